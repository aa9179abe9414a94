"""The tables, as SQLAlchemy Core; migrations/ must produce exactly this schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("artifact", sa.String(512), nullable=False),
    sa.Column("entrypoint", sa.String(256), nullable=True),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=True),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("input_example", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
    sa.UniqueConstraint("model_id", "sha256", name="uq_versions_model_sha256"),
)

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("model_id", "revision", name="uq_routes_model_revision"),
)

# One row; bumped by every change servers must see (routes, versions). Servers poll it:
# a one-row read is cheap on SQLite and PostgreSQL alike, and keeps the hot path off the DB.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("counter", sa.BigInteger, nullable=False),
)

# Per worker process and route revision, what each version did in each role. Workers write
# their own cumulative rows (so a flush is idempotent); readers sum across workers.
route_stats = sa.Table(
    "route_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint(
        "model", "revision", "worker", "version", "role", name="uq_route_stats_key"
    ),
)

# Named leases: exactly one process at a time runs a singleton job (the canary controller).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# -- prediction log (issue 5) ------------------------------------------------------------

# -- keys, rate limits and audit (issue 7) ------------------------------------------------
