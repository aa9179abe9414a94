"""SQL schema, migrations and connections, shared by every component that keeps state.

Nothing is imported here: `engine` (connect, upgrade_to_head) and `tables` load SQLAlchemy,
which the commands that read a SQLite store through `schema` and sqlite3 do without.
"""
