"""SQL schema, migrations and connections, shared by every component that keeps state."""

from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.tables import metadata

__all__ = ["connect", "metadata", "upgrade_to_head"]
