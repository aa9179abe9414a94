"""A request's headers read straight from the ASGI scope, on the inference path.

Starlette's `Headers.get` is `Mapping.get`: for a header that is absent (most of those the
path asks for: x-routing-key, x-request-id, content-encoding) it raises and catches a
KeyError; py-spy put those look-ups at ~2.5 % of the HTTP worker's CPU under load.
"""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
