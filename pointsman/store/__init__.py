"""SQL schema and migrations shared by registry, routing and (later) auth and logstore."""

from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.tables import metadata

__all__ = ["connect", "metadata", "upgrade_to_head"]
