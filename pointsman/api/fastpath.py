"""The app class: FastAPI, with inference requests sent straight to their guarded endpoint.

An inference endpoint answers every error itself, in its protocol's shape
(`common.answer`), so the middleware stack and the router's walk over every route of the app
buy it nothing; profiled in the live server they were about a tenth of the front's CPU per
request. Every other request, and an inference path under another method, goes through
FastAPI as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pointsman.api import access, errors
from pointsman.monitoring.logs import ACCESS_LOGGER, REQUEST

access_log = logging.getLogger(ACCESS_LOGGER)

Endpoint = Callable[[Request], Awaitable[Response]]
FastMatch = tuple[Route, Any, dict[str, Any]]  # the route, its endpoint, the path parameters
MATCHED_PATHS = 1024  # paths remembered; past it the memory starts afresh
_UNSEEN = object()


class ServingApp(FastAPI):
    """A FastAPI app whose `fast_routes` are matched first, outside the middleware stack."""

    fast_routes: tuple[Route, ...] = ()
    has_access_log = False  # one line per answered request in the log (`access_log`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._matched: dict[tuple[str, str], FastMatch | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # The request's log fields, filled in below it (request id, model, version).
        token = REQUEST.set({})
        try:
            if self.has_access_log:
                await self._logged(scope, receive, send)
            else:
                await self._route(scope, receive, send)
        finally:
            REQUEST.reset(token)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve, then write the access line: who asked what, the answer, how long."""
        started = time.perf_counter()
        status = [500]
        context = REQUEST.get() or {}

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        context.setdefault("request_id", value.decode("latin-1"))
            await send(message)

        try:
            await self._route(scope, receive, sent)
        finally:
            client = (scope.get("state") or {}).get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status[0],
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status[0],
                    "duration_ms": round(1000 * (time.perf_counter() - started), 3),
                    "client": client,
                    "request_id": context.get("request_id"),
                },
            )

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            found = self._fast_match(scope)
            if found is not None:
                route, endpoint, params = found
                scope["app"] = self
                scope["endpoint"] = endpoint
                scope["path_params"] = dict(params)
                await _serve(route.app, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _fast_match(self, scope: Scope) -> FastMatch | None:
        """The fast route a POST's path matches, with its path parameters; remembered per
        path (matching every route's pattern anew was ~2 % of the worker's CPU)."""
        key = (scope["path"], scope.get("root_path", ""))
        found = self._matched.get(key, _UNSEEN)
        if found is not _UNSEEN:
            return found  # type: ignore[return-value]
        found = None
        for route in self.fast_routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                found = (route, child["endpoint"], child["path_params"])
                break
        if len(self._matched) >= MATCHED_PATHS:  # paths name models: any client may vary them
            self._matched.clear()
        self._matched[key] = found
        return found


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
