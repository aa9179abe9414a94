"""The console's fixtures: the API tests' project with iris and churn deployed."""

from tests.api.conftest import anyio_backend, served

__all__ = ["anyio_backend", "served"]
