"""The app class: FastAPI, with inference requests sent straight to their guarded endpoint.

An inference endpoint answers every error itself, in its protocol's shape
(`common.answer`), so the middleware stack and the router's walk over every route of the app
buy it nothing; profiled in the live server they were about a tenth of the front's CPU per
request. Every other request, and an inference path under another method, goes through
FastAPI as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pointsman.api import access, errors

Endpoint = Callable[[Request], Awaitable[Response]]


class ServingApp(FastAPI):
    """A FastAPI app whose `fast_routes` are matched first, outside the middleware stack."""

    fast_routes: tuple[Route, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.fast_routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child)
                    await _serve(route.app, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


async def _serve(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await app(scope, receive, send)
    except Exception as exc:
        # Only what the endpoint could not answer itself (the key check's store, say): the
        # app's JSON 500, as the middleware stack would have given it.
        response = await errors.unexpected_error(Request(scope), exc)
        await response(scope, receive, send)


def fast_routes(
    routes: list[BaseRoute], gate: access.Gate, table: dict[tuple[str, str], access.Access]
) -> tuple[Route, ...]:
    """The POST-only `routes`, each behind the same key check as its routed twin."""
    out = []
    for route in routes:
        if not (isinstance(route, Route) and route.methods == {"POST"}):
            continue
        fast = Route(route.path, route.endpoint, methods=["POST"], name=route.name)
        fast.app = access.guard(_direct(route.endpoint), access.decisions_of(route, table), gate)
        out.append(fast)
    return tuple(out)


def _direct(endpoint: Endpoint) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
