"""Who may call what: every endpoint's requirement, in one table, enforced around each route.

`ACCESS` maps (method, path template) to a decision. `protect` wraps every route of the app
with a check of the presented API key against it; a route missing from the table is served
as admin-only (and tests/api/test_access_matrix.py fails until it gets a decision).
The check runs after routing (it needs the model in the path) and before the endpoint.
"""

from __future__ import annotations

import base64
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pointsman.api.errors import error_response_for, request_id_of
from pointsman.auth import Client, KeyBook, KeyCache, RateLimiter
from pointsman.auth.sharedlimit import SharedRateLimiter
from pointsman.errors import PointsmanError, RateLimited, Unauthorized
from pointsman.monitoring import metrics
from pointsman.project import Project
from pointsman.protocols import CODECS, Codec

log = logging.getLogger("pointsman.api")

Kind = Literal["open", "client", "predict", "read", "register", "outcome", "deploy", "admin"]
ModelOf = Callable[[Scope], str | None]


def path_model(scope: Scope) -> str | None:
    model = scope.get("path_params", {}).get("model")
    return None if model is None else str(model)


def query_model(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("model")
    return values[0] if values else None


def every_model(scope: Scope) -> str | None:
    """No one model: the key needs the scope on `*`."""
    return None


def default_model(scope: Scope) -> str | None:
    """The model behind bare /invocations, when it is unambiguous (else the endpoint says)."""
    state = scope["app"].state
    try:
        return state.catalog.default_model(state.project.settings.default_model)  # type: ignore[no-any-return]
    except PointsmanError:
        return None


@dataclass(frozen=True)
class Access:
    """One endpoint's requirement: `kind` of scope on the model `model_of` names.

    open: no key. client: any valid key. predict/read/register/outcome: `predict:<model>`,
    `read:<model>`, `register:<model>`, `outcome:<model>` (`…:*` without a model); `also`
    lists kinds accepted as well.
    admin: the `admin` scope. `codec`, on inference endpoints, shapes the error body the
    way that protocol's clients read it (MLflow's, say).
    """

    kind: Kind
    model_of: ModelOf = path_model
    also: tuple[Kind, ...] = ()
    codec: Codec | None = None

    def needed(self, scope: Scope) -> tuple[str, ...]:
        """The scopes of which the key must hold one; () for any valid key."""
        if self.kind in ("open", "client"):
            return ()
        if self.kind == "admin":
            return ("admin",)
        model = self.model_of(scope)
        if model is None and self.model_of is default_model:
            return ()  # several models: the endpoint answers 400 with the fix
        target = model or "*"
        return tuple(f"{k}:{target}" for k in (self.kind, *self.also))


OPEN = Access("open")
CLIENT = Access("client")
# Protocol clients read a model's metadata before predicting, so predict:<model> reads too.
DESCRIBE = Access("read", also=("predict",))
READ = Access("read")
ADMIN = Access("admin")

ADMIN_MODELS = "/v1/admin/models"
ACCESS: dict[tuple[str, str], Access] = {
    # health and docs: probes and load balancers carry no key; the API shape is public
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/ping"): OPEN,
    ("GET", "/health"): OPEN,
    ("GET", "/version"): OPEN,
    ("GET", "/v2/health/live"): OPEN,
    ("GET", "/v2/health/ready"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/v2"): OPEN,
    ("GET", "/v2/"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    # predict, in every protocol: each codec's paths (bare /invocations: the default model)
    **{
        ("POST", path): Access(
            "predict", path_model if "{model}" in path else default_model, codec=codec
        )
        for codec in CODECS
        for path in codec.paths
    },
    # what is served, and a model's metadata and readiness
    ("GET", "/v1/models"): CLIENT,
    ("GET", "/v2/models"): CLIENT,
    ("GET", "/v1/models/{model}"): DESCRIBE,
    ("GET", "/v1/models/{model}/versions/{version}"): DESCRIBE,
    ("GET", "/v2/models/{model}"): DESCRIBE,
    ("GET", "/v2/models/{model}/versions/{version}"): DESCRIBE,
    ("GET", "/v2/models/{model}/ready"): DESCRIBE,
    ("GET", "/v2/models/{model}/versions/{version}/ready"): DESCRIBE,
    # the prediction log of one model (all models: read:*)
    ("GET", "/v1/predictions"): Access("read", query_model),
    # the true values of earlier predictions (a labelling job's key: outcome:<model>)
    ("POST", "/v1/models/{model}/outcomes"): Access("outcome"),
    # the catalogue entry of one model; every change is admin
    ("GET", ADMIN_MODELS): ADMIN,
    ("GET", ADMIN_MODELS + "/{model}"): READ,
    ("GET", ADMIN_MODELS + "/{model}/versions"): READ,
    ("GET", ADMIN_MODELS + "/{model}/about"): READ,
    # what a model is for (the console's catalogue): its owners may edit it
    ("PUT", ADMIN_MODELS + "/{model}/about"): Access("deploy"),
    # a new version uploaded (a CI job's key: register:<model>, nothing else)
    ("POST", ADMIN_MODELS + "/{model}/versions"): Access("register"),
    ("GET", ADMIN_MODELS + "/{model}/runners"): READ,
    ("PUT", ADMIN_MODELS + "/{model}/runners"): ADMIN,
    ("GET", ADMIN_MODELS + "/{model}/route"): READ,
    ("GET", ADMIN_MODELS + "/{model}/route/history"): READ,
    ("GET", ADMIN_MODELS + "/{model}/canary"): READ,
    ("GET", ADMIN_MODELS + "/{model}/quality"): READ,
    ("PUT", ADMIN_MODELS + "/{model}/route"): ADMIN,
    ("POST", ADMIN_MODELS + "/{model}/deploy"): ADMIN,
    ("POST", ADMIN_MODELS + "/{model}/promote"): ADMIN,
    ("POST", ADMIN_MODELS + "/{model}/rollback"): ADMIN,
    ("POST", ADMIN_MODELS + "/{model}/canary"): ADMIN,
    ("DELETE", ADMIN_MODELS + "/{model}/canary"): ADMIN,
    ("GET", "/v1/admin/audit"): ADMIN,
    ("GET", "/v1/admin/keys"): ADMIN,
    ("POST", "/v1/admin/keys"): ADMIN,
    ("DELETE", "/v1/admin/keys/{name}"): ADMIN,
    # alert rules, their state and history: every one admin (channels hold webhook secrets)
    ("GET", "/v1/admin/alerts"): ADMIN,
    ("POST", "/v1/admin/alerts"): ADMIN,
    ("GET", "/v1/admin/alerts/metrics"): ADMIN,
    ("GET", "/v1/admin/alerts/history"): ADMIN,
    ("GET", "/v1/admin/alerts/{name}"): ADMIN,
    ("DELETE", "/v1/admin/alerts/{name}"): ADMIN,
    ("POST", "/v1/admin/alerts/{name}/test"): ADMIN,
    # batch jobs read and write the server's files and databases: admin only
    ("POST", "/v1/models/{model}/jobs"): ADMIN,
    ("GET", "/v1/admin/jobs"): ADMIN,
    ("GET", "/v1/admin/jobs/{job_id}"): ADMIN,
    ("POST", "/v1/admin/jobs/{job_id}/cancel"): ADMIN,
    # every model's figures: read:* (or no key with metrics_open, see `table_for`)
    ("GET", "/metrics"): Access("read", every_model),
}


def table_for(metrics_open: bool) -> dict[tuple[str, str], Access]:
    """The access table of an app: ACCESS, with /metrics open when the settings say so."""
    if not metrics_open:
        return ACCESS
    return {**ACCESS, ("GET", "/metrics"): OPEN}


def decisions_of(route: BaseRoute, table: dict[tuple[str, str], Access]) -> dict[str, Access]:
    """Method → Access for one route; methods without a decision are left out."""
    path = getattr(route, "path", None)
    methods = getattr(route, "methods", None) or set()
    out = {}
    for method in methods:
        found = table.get(("GET" if method == "HEAD" else method, str(path)))
        if found is not None:
            out[method] = found
    return out


def undecided(routes: list[BaseRoute], table: dict[tuple[str, str], Access]) -> list[str]:
    """`METHOD path` of every route method the table has no decision for."""
    out = []
    for route in routes:
        decided = decisions_of(route, table)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method not in decided:
                out.append(f"{method} {getattr(route, 'path', route)}")
    return out


@dataclass
class Gate:
    """The app's key table and rate limiter (set up in the lifespan), or auth switched off."""

    enabled: bool
    keys: KeyCache | None = None
    limiter: RateLimiter | None = None
    shared: SharedRateLimiter | None = None  # with redis_url: one bucket across replicas

    def admit(self, scope: Scope, access: Access) -> Client:
        """The calling client, or Unauthorized / Forbidden."""
        if self.keys is None:
            raise Unauthorized("starting", "The server is starting; retry in a moment.")
        client = self.keys.authenticate(presented_key(scope), time.time())
        client.check(access.needed(scope))
        return client

    async def spend(self, client: Client) -> None:
        """Spend one of the client's tokens, or RateLimited (RateLimiterUnavailable)."""
        if client.rate_per_s is None:
            return
        if self.shared is not None:
            wait = await self.shared.take(client.key_hash, client.rate_per_s, client.name)
        elif self.limiter is not None:
            wait = self.limiter.take(client.key_hash, client.rate_per_s, client.burst, time.time())
        else:
            return
        if wait > 0:
            raise RateLimited(client.name, client.rate or "", wait)


def presented_key(scope: Scope) -> str | None:
    """The key from `Authorization: Bearer …`, else `X-API-Key`, else Basic auth's password.

    Basic is for clients that can only do that (MLflow's scoring client reads ~/.netrc):
    any user name, the key as password.
    """
    fallback = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" and token.strip():
                return str(token.strip())
            if scheme == "basic" and fallback is None:
                fallback = basic_password(token.strip())
        elif name == b"x-api-key":
            fallback = value.decode("latin-1").strip()
    return fallback


def basic_password(token: str) -> str | None:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def guard(app: ASGIApp, decisions: dict[str, Access], gate: Gate) -> ASGIApp:
    """`app` behind the key check its decisions call for."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        access = decisions.get(scope.get("method", ""), ADMIN)
        if scope["type"] != "http" or access.kind == "open" or not gate.enabled:
            await app(scope, receive, send)
            return
        try:
            client = gate.admit(scope, access)
            await gate.spend(client)
        except PointsmanError as exc:
            metrics.AUTH_REFUSED.labels(exc.code).inc()
            await refusal(scope, exc, access)(scope, receive, send)
            return
        scope.setdefault("state", {})["client"] = client.name
        await app(scope, receive, send)

    return guarded


def refusal(scope: Scope, exc: PointsmanError, access: Access) -> Any:
    """The error response in the endpoint's protocol, with the headers HTTP asks for."""
    response = error_response_for(exc, access.codec, request_id_of(Request(scope)))
    if isinstance(exc, Unauthorized):
        error = "" if exc.reason == "missing" else ', error="invalid_token"'
        response.headers["WWW-Authenticate"] = f'Bearer realm="pointsman"{error}'
    return response


def protect(routes: list[BaseRoute], gate: Gate, table: dict[tuple[str, str], Access]) -> None:
    """Wrap every route's app with its decisions; log the undecided ones (admin-only)."""
    for i, route in enumerate(routes):
        if not isinstance(route, Route):
            continue
        # A copy: FastAPI routers are module-level, shared by every app built in a process.
        guarded = copy.copy(route)
        guarded.app = guard(route.app, decisions_of(route, table), gate)
        routes[i] = guarded
    missing = undecided(routes, table)
    if missing:
        log.warning("no access decision for %s: admin only", ", ".join(missing))


def client_of(request: Request) -> str | None:
    """The calling client's name (the key's), or None with auth off."""
    state = request.scope.get("state") or {}
    name = state.get("client")
    return None if name is None else str(name)


BANNER = "AUTH IS OFF: every endpoint answers anyone who can reach this server"


def open_gate(gate: Gate, project: Project) -> None:
    """Load the keys and open the shared rate-limit counters (blocking; in the lifespan)."""
    settings = project.settings
    if not gate.enabled:
        log.warning("%s (auth = false). Turn it on before exposing the port.", BANNER)
        return
    limiter = RateLimiter(settings.project_path() / RATE_FILE)
    replicas = settings.rate_limit_replicas
    if settings.redis_url:
        # One bucket in Redis for every replica: keys carry their whole rate; the local
        # file (each replica's share) serves only while Redis is down.
        gate.shared = SharedRateLimiter(
            settings.redis_url,
            settings.redis_key_prefix,
            settings.redis_down_policy,
            limiter,
            replicas,
        )
        replicas = 1
    keys = KeyCache(KeyBook(project.engine), replicas)
    keys.refresh(force=True)
    gate.limiter = limiter
    gate.keys = keys


RATE_FILE = "ratelimits.bin"


async def close_gate(gate: Gate) -> None:
    if gate.shared is not None:
        await gate.shared.close()
    if gate.limiter is not None:
        gate.limiter.close()
