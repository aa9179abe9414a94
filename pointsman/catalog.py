"""What this process routes and where its versions run: versions, routes, runners, readiness.

The request path reads a `Snapshot` replaced whole on every refresh, so it never touches the
store and never meets a half-updated catalog. Versions run in runner processes (see
pointsman/runners), never here: the catalog holds a `RunnerPool` per version and reads the
supervisor's published state. A changed route is taken only once its new versions have a
warm runner; until then the revision in force keeps answering. At start, with nothing in
force yet, routes are taken at once: a version still loading is not ready, the rest serve.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pointsman.errors import (
    BadRequest,
    ModelNotFound,
    ModelNotReady,
    NotDeployed,
    VersionNotFound,
)
from pointsman.monitoring import metrics
from pointsman.project import Project
from pointsman.registry import VersionRecord
from pointsman.registry.models import read_change_counter
from pointsman.routing import Route
from pointsman.runners import RunDir, RunnerSpec
from pointsman.runners.client import RunnerPool
from pointsman.runners.remote import RemoteRunners, expand
from pointsman.types import Signature

log = logging.getLogger("pointsman.catalog")

STATE_TTL_S = 0.2  # the supervisor's state is read at most this often
WANT_EVERY_S = 5.0  # a pinned version no route holds is asked for again this often
RESOLVE_S = 5.0  # remote runners' names are resolved again this often (pods come and go)


@dataclass(frozen=True)
class Snapshot:
    """Everything the request path reads, replaced whole on every refresh."""

    versions: dict[str, dict[int, VersionRecord]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    specs: dict[tuple[str, int], RunnerSpec] = field(default_factory=dict)
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
    """The routes and versions of one project, and this process's links to their runners."""

    def __init__(self, project: Project, run_dir: RunDir) -> None:
        self.project = project
        self.run_dir = run_dir
        self.snapshot = Snapshot()
        self.pools: dict[tuple[str, int], RunnerPool] = {}
        self.pending: dict[str, Route] = {}  # revisions waiting for warm runners
        self._refresh_lock = threading.Lock()
        # Read on first use: -inf, as monotonic time starts at boot (under STATE_TTL_S on a
        # machine just started, had it been 0).
        self._state: tuple[float, dict[str, Any]] = (-math.inf, {})
        self._wanted_at: dict[tuple[str, int], float] = {}
        self._refused: set[tuple[str, int]] = set()  # revisions already logged as refused
        settings = project.settings
        self.remote = RemoteRunners(settings.remote_runners, settings.runner_secret)
        self._resolved_at = 0.0

    # -- refreshing ------------------------------------------------------------------
    def refresh(self) -> None:
        """Read versions, routes and runner specs; take each route once it can answer."""
        with self._refresh_lock:  # the route poll and the canary tick may both refresh
            # The runners' state read afresh: a route change that waited for its runners to
            # warm is taken now, not left pending on a read from before they were ready.
            self._state = (-math.inf, {})
            counter = read_change_counter(self.project.engine)
            registry = self.project.registry
            versions = {
                name: {v.number: v for v in registry.list_versions(name)}
                for name in registry.model_names()
            }
            latest = self.project.routes.all_current()
            wanted = sorted({(m, n) for m, r in latest.items() for n in r.versions})
            wanted += [k for k in self.snapshot.specs if k not in wanted]
            specs = self.project.runners.specs(wanted)
            routes = {m: self._taken(route) for m, route in latest.items()}
            self.snapshot = Snapshot(versions, routes, specs, counter)
            self._link(specs)

    def is_stale(self) -> bool:
        """Whether the store changed since the last refresh, or a new route is waiting."""
        if self.has_warm_pending():
            return True
        return read_change_counter(self.project.engine) != self.snapshot.counter

    def has_warm_pending(self) -> bool:
        """Whether a route held back for its runners can be taken now (no store read)."""
        return any(self._warm(r) is None for r in list(self.pending.values()))

    def _taken(self, route: Route) -> Route:
        """`route` once each of its versions has a warm runner, else the one in force."""
        old = self.snapshot.routes.get(route.model)
        if old is None or old.revision == route.revision:
            self.pending.pop(route.model, None)
            return route
        problem = self._warm(route)
        if problem is None:
            self.pending.pop(route.model, None)
            return route
        self.pending[route.model] = route
        if problem != "loading" and (route.model, route.revision) not in self._refused:
            self._refused.add((route.model, route.revision))
            log.error(
                "%s revision %s not taken (%s); revision %s stays in force",
                route.model, route.revision, problem, old.revision,
            )  # fmt: skip
        return old

    def _warm(self, route: Route) -> str | None:
        """None when every version of `route` has a ready runner; else why not."""
        for number in route.versions:
            state = self.runner_state(route.model, number)
            runners = state.get("runners") or []
            if any(r.get("state") == "ready" for r in runners):
                continue
            failed = [r for r in runners if r.get("state") == "failed"]
            if failed and len(failed) == len(runners):
                return f"version {number} failed to load: {failed[0].get('error')}"
            return "loading"
        return None

    def _link(self, specs: dict[tuple[str, int], RunnerSpec]) -> None:
        """A pool per version with a spec; pools of versions gone are closed."""
        for key, spec in specs.items():
            addresses = self._addresses(key, spec)
            pool = self.pools.get(key)
            if pool is None:
                self.pools[key] = RunnerPool(addresses, self.remote.secret)
            elif pool.addresses != addresses:
                pool.resize(addresses)
        for key in [k for k in self.pools if k not in specs]:
            self.pools.pop(key).close()

    def _addresses(self, key: tuple[str, int], spec: RunnerSpec) -> list[Any]:
        """Where a version's runners listen: their sockets here (the surge runner's too), or
        host:port each when they run elsewhere (names resolved: one per pod)."""
        remote = self.remote.addresses(*key)
        if remote is not None:
            return expand(remote)
        return self.run_dir.sockets(*key, spec.replicas + 1)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def runner_state(self, model: str, number: int) -> dict[str, Any]:
        """What the supervisor published about a version's runners (read at most 5x/s); of
        remote runners, what this process's connections to them say."""
        if self.remote.is_remote(model, number):
            pool = self.pools.get((model, number))
            return pool.state() if pool is not None else {}
        at, state = self._state
        if time.monotonic() - at > STATE_TTL_S:
            state = self.run_dir.read_state()
            self._state = (time.monotonic(), state)
        found = state.get("versions", {}).get(f"{model}:{number}")
        return found if isinstance(found, dict) else {}

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

    def spec_of(self, version: VersionRecord) -> RunnerSpec:
        key = (version.model, version.number)
        return self.snapshot.specs.get(key) or self.project.runners.spec(*key)

    async def pool_of(self, version: VersionRecord) -> RunnerPool:
        """The runners of a version; a pinned one no route holds is asked for on first use."""
        key = (version.model, version.number)
        pool = self.pools.get(key)
        if pool is None:
            spec = self.spec_of(version)
            addresses = await asyncio.to_thread(self._addresses, key, spec)
            pool = self.pools[key] = RunnerPool(addresses, self.remote.secret)
            self.snapshot.specs.setdefault(key, spec)
        if self.remote.is_remote(*key):
            return pool  # always up elsewhere: nothing to ask for
        route = self.snapshot.routes.get(key[0])
        routed = route is not None and key[1] in route.versions
        last = self._wanted_at.get(key)
        if not routed and (last is None or time.monotonic() - last >= WANT_EVERY_S):
            self._wanted_at[key] = time.monotonic()
            self.run_dir.want(*key)
        return pool

    async def wait_warm(self, version: VersionRecord, timeout_s: float) -> RunnerPool:
        """The version's pool once connected, or ModelNotReady with why after `timeout_s`."""
        pool = await self.pool_of(version)
        deadline = time.monotonic() + timeout_s
        while not pool.is_ready:
            await pool.connect()
            if pool.is_ready:
                break
            if self.remote.is_remote(version.model, version.number):
                await pool.connect(now=True)  # up elsewhere or not: nothing loads on asking
                if pool.is_ready:
                    break
                raise ModelNotReady(version.model, str(version.number), _why_not(pool.state()))
            state = self.runner_state(version.model, version.number)
            runners = state.get("runners") or []
            if runners and all(r.get("state") == "failed" for r in runners):
                raise ModelNotReady(version.model, str(version.number), runners[0].get("error"))
            if time.monotonic() > deadline:
                raise ModelNotReady(version.model, str(version.number), "its runner is not up")
            await asyncio.sleep(0.05)
        return pool

    async def connect(self) -> None:
        """Open links to runners that came up (a background job on the event loop)."""
        if self.remote and time.monotonic() - self._resolved_at >= RESOLVE_S:
            self._resolved_at = time.monotonic()
            await self._resolve()
        # Every replica, not only until one is up: a second runner comes up later, a runner
        # restarts after a crash, pods come and go.
        await asyncio.gather(*(p.connect() for p in list(self.pools.values()) if p.wants_links))

    async def _resolve(self) -> None:
        """Remote runners' names resolved again: a pod added is called, one gone dropped."""
        pools = {k: p for k, p in self.pools.items() if self.remote.is_remote(*k)}
        found = await asyncio.to_thread(
            lambda: {k: expand(self.remote.addresses(*k) or []) for k in pools}
        )
        for key, addresses in found.items():
            if self.pools.get(key) is pools[key] and pools[key].addresses != addresses:
                pools[key].resize(addresses)

    # -- health ---------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Every routed version and whether a runner of it is up and warm (or why not)."""
        report: dict[str, Any] = {}
        runners: dict[str, Any] = {}
        ready = True
        for model, route in self.snapshot.routes.items():
            for number in route.versions:
                state = self.runner_state(model, number)
                up = [r for r in state.get("runners") or [] if r.get("state") == "ready"]
                ok = bool(up)
                ready &= ok
                metrics.MODEL_LOADED.labels(model, str(number)).set(ok)
                report[f"{model}:{number}"] = "ready" if ok else _why_not(state)
                runners[f"{model}:{number}"] = state.get("runners") or []
        return {"ready": ready, "versions": report, "runners": runners}

    def why_not_ready(self, version: VersionRecord) -> str:
        """Why a version's runners cannot answer, as the supervisor last said."""
        return _why_not(self.runner_state(version.model, version.number))

    def has_failed(self) -> bool:
        """Whether every routed version that is not ready failed to load (no use waiting)."""
        for model, route in self.snapshot.routes.items():
            for number in route.versions:
                runners = self.runner_state(model, number).get("runners") or []
                if any(r.get("state") == "ready" for r in runners):
                    continue
                if not runners or any(r.get("state") != "failed" for r in runners):
                    return False
        return True

    def is_version_ready(self, version: VersionRecord) -> bool:
        pool = self.pools.get((version.model, version.number))
        if pool is not None and pool.is_ready:  # connected: warm (the state file may lag)
            return True
        state = self.runner_state(version.model, version.number)
        return any(r.get("state") == "ready" for r in state.get("runners") or [])


def _why_not(state: dict[str, Any]) -> str:
    runners = state.get("runners") or []
    if not runners:
        return "no runner started yet"
    errors = [r.get("error") for r in runners if r.get("error")]
    states = sorted({str(r.get("state")) for r in runners})
    if errors:
        return str(errors[0])
    return f"its runners are {' and '.join(states)}"


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
