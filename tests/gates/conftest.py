"""The gates tests run on both stores (tests/conftest.py) and the ASGI app (tests/api)."""

from tests.api.conftest import anyio_backend, client, served

__all__ = ["anyio_backend", "client", "served"]
