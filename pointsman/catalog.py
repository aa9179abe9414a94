"""What this process has routed and loaded: versions, routes, runtimes, readiness.

The request path reads a `Snapshot` replaced whole on every refresh, so it never touches the
store and never meets a half-updated catalog. A refresh loads and warms every newly routed
version *before* the new routes are taken; a route whose versions fail to load is not taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio.to_thread

from pointsman.errors import (
    BadRequest,
    ModelNotFound,
    ModelNotReady,
    NotDeployed,
    PointsmanError,
    VersionNotFound,
)
from pointsman.monitoring import metrics
from pointsman.project import Project
from pointsman.registry import VersionRecord, read_change_counter
from pointsman.registry.loading import load_and_warm
from pointsman.routing import Route
from pointsman.runtimes import Runtime
from pointsman.types import Signature

log = logging.getLogger("pointsman.catalog")

DRAIN_S = 60.0  # a version no longer routed stays loaded this long for requests in flight
RETRY_LOAD_S = 10.0  # a version that failed to load is not tried again sooner than this

# Told (model, version number, error) when a version fails to load: the worker records it
# as a store event that the alert evaluator, perhaps in another process, reads.
LoadFailed = Callable[[str, int, str], None]


@dataclass
class Loaded:
    """A version loaded in this process, or the reason it could not be."""

    version: VersionRecord
    runtime: Runtime | None = None
    error: str | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def is_ready(self) -> bool:
        return self.runtime is not None


@dataclass(frozen=True)
class Snapshot:
    """Everything the request path reads, replaced whole on every refresh."""

    versions: dict[str, dict[int, VersionRecord]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    counter: int = -1


@dataclass(frozen=True)
class Target:
    """Where a request goes: a route (arms chosen per request) or a pinned version."""

    model: str
    version: VersionRecord  # decodes the body: the pinned version or the route's primary
    route: Route | None  # None when the caller pinned a version
    header_key: str | None  # X-Routing-Key, when the caller sent one
    signature: Signature  # the version's, plus the route's sticky key as a passthrough


class Catalog:
    """The routes and versions of one project, and the runtimes this process loaded."""

    def __init__(self, project: Project, on_load_failed: LoadFailed | None = None) -> None:
        self.project = project
        self.snapshot = Snapshot()
        self.loaded: dict[tuple[str, int], Loaded] = {}
        self.on_load_failed = on_load_failed
        self._load_lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    # -- refreshing ------------------------------------------------------------------
    def refresh(self, load_routed: bool = True) -> None:
        """Read versions and routes; load routed versions first (blocking)."""
        with self._refresh_lock:  # the route poll and the canary tick may both refresh
            counter = read_change_counter(self.project.engine)
            registry = self.project.registry
            versions = {
                name: {v.number: v for v in registry.list_versions(name)}
                for name in registry.model_names()
            }
            routes = self.project.routes.all_current()
            if load_routed:
                routes = {m: self._taken(route, versions[m]) for m, route in routes.items()}
            self.snapshot = Snapshot(versions, routes, counter)
            self.unload_unrouted()
            for (model, number), loaded in list(self.loaded.items()):
                metrics.MODEL_LOADED.labels(model, str(number)).set(loaded.is_ready)

    def is_stale(self) -> bool:
        """Whether the store changed since the last refresh (one cheap read)."""
        return read_change_counter(self.project.engine) != self.snapshot.counter

    def _taken(self, route: Route, versions: dict[int, VersionRecord]) -> Route:
        """`route` once its versions are loaded, else the revision in force (if any)."""
        loads = [self.ensure_loaded(versions[n]) for n in route.versions]
        failed = [f"{x.version.number}: {x.error}" for x in loads if not x.is_ready]
        old = self.snapshot.routes.get(route.model)
        if failed and old is not None and old.revision != route.revision:
            log.error(
                "%s revision %s not taken, its versions failed to load (%s); revision %s "
                "stays in force",
                route.model, route.revision, "; ".join(failed), old.revision,
            )  # fmt: skip
            return old
        return route

    def unload_unrouted(self) -> None:
        """Drop versions no route needs any more, once they have drained."""
        routed = {(m, v) for m, r in self.snapshot.routes.items() for v in r.versions}
        for key in list(self.loaded):
            if key not in routed and time.time() - self.loaded[key].loaded_at > DRAIN_S:
                self.loaded.pop(key, None)
                metrics.MODEL_LOADED.labels(key[0], str(key[1])).set(0)

    def ensure_loaded(self, version: VersionRecord) -> Loaded:
        """The loaded version, loading it now if needed (blocking; retried after a while)."""
        key = (version.model, version.number)
        with self._load_lock:
            found = self.loaded.get(key)
            fresh = found is not None and time.time() - found.loaded_at < RETRY_LOAD_S
            if found is not None and (found.is_ready or fresh):
                if found.is_ready:
                    found.loaded_at = time.time()  # routed again: restart its drain clock
                return found
            loaded = self._load(version)
            self.loaded[key] = loaded
            return loaded

    def _load(self, version: VersionRecord) -> Loaded:
        try:
            runtime = load_and_warm(self.project.registry, version)
        except Exception as exc:
            if isinstance(exc, PointsmanError):
                error = exc.message
                log.error("cannot load %s version %s: %s", version.model, version.number, error)
            else:
                error = f"{type(exc).__name__}: {exc}"
                log.exception("cannot load %s version %s", version.model, version.number)
            if self.on_load_failed is not None:
                self.on_load_failed(version.model, version.number, error)
            return Loaded(version, error=error)
        log.info("loaded %s version %s (%s)", version.model, version.number, version.format)
        return Loaded(version, runtime)

    # -- where a request goes ---------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self.snapshot.versions)

    def deployed_models(self) -> list[str]:
        return sorted(self.snapshot.routes)

    def get_route(self, model: str) -> Route:
        """The route in force; ModelNotFound or NotDeployed say what to do if none."""
        snapshot = self.snapshot
        route = snapshot.routes.get(model)
        if route is None:
            if model not in snapshot.versions:
                raise ModelNotFound(model, sorted(snapshot.versions))
            raise NotDeployed(model, [str(n) for n in sorted(snapshot.versions[model])])
        return route

    def get_version(self, model: str, version: int | str | None = None) -> VersionRecord:
        """The version that answers `model`: its route's primary, or the one asked for."""
        snapshot = self.snapshot
        if version is None or version == "":
            number = self.get_route(model).primary
        else:
            if model not in snapshot.versions:
                raise ModelNotFound(model, sorted(snapshot.versions))
            try:
                number = int(version)
            except (TypeError, ValueError):
                number = -1
        found = snapshot.versions.get(model, {}).get(number)
        if found is None:
            known = [str(n) for n in snapshot.versions[model]]
            raise VersionNotFound(model, str(version), known)
        return found

    def target(
        self, model: str, version: int | str | None = None, header_key: str | None = None
    ) -> Target:
        """The route (or pinned version) of a request, and the signature to decode it with."""
        found = self.get_version(model, version)
        if version is not None and version != "":
            return Target(model, found, None, None, found.signature)
        route = self.snapshot.routes[model]
        return Target(model, found, route, header_key, with_key(found.signature, route))

    def default_model(self, configured: str = "") -> str:
        """The model behind a path that names none (MLflow's bare /invocations)."""
        if configured:
            return configured
        deployed = self.deployed_models()
        if len(deployed) == 1:
            return deployed[0]
        if not deployed:
            raise NotDeployed("(default)", [])
        raise BadRequest(
            f"/invocations needs one model but {len(deployed)} are deployed "
            f"({', '.join(deployed)}); call /v1/models/{{model}}/invocations or set default_model."
        )

    async def runtime_of(self, version: VersionRecord) -> Runtime:
        """The loaded runtime of a version, loading a pinned unrouted one on first use."""
        loaded = self.loaded.get((version.model, version.number))
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(self.ensure_loaded, version)
        if loaded.runtime is None:
            raise ModelNotReady(version.model, str(version.number), loaded.error or "not loaded")
        return loaded.runtime

    # -- health ---------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Every routed version and whether it is loaded and answered its example."""
        report: dict[str, Any] = {}
        ready = True
        for model, route in self.snapshot.routes.items():
            for number in route.versions:
                loaded = self.loaded.get((model, number))
                ok = loaded is not None and loaded.is_ready
                ready &= ok
                report[f"{model}:{number}"] = (
                    "ready" if ok else (loaded.error if loaded and loaded.error else "not loaded")
                )
        return {"ready": ready, "versions": report}

    def is_version_ready(self, version: VersionRecord) -> bool:
        loaded = self.loaded.get((version.model, version.number))
        return loaded is not None and loaded.is_ready


def with_key(signature: Signature, route: Route) -> Signature:
    """`signature`, taking the route's sticky key aside when it is not a model input."""
    key = route.policy.key
    if key is None or key in signature.names:
        return signature
    return replace(signature, passthrough=(key,))


def not_ready_message(report: dict[str, Any]) -> str:
    """ "Not ready: churn:2 (why); …" from a readiness report (for /readyz and V2)."""
    versions = report.get("versions")
    items = versions.items() if isinstance(versions, dict) else []
    return "Not ready: " + "; ".join(f"{k} ({v})" for k, v in items if v != "ready")
