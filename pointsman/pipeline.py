"""The path of one request, from a decoded Frame to a Prediction; knows nothing of HTTP.

Routes, version metadata and loaded models live in memory. A background task polls the
store's change counter and swaps in new routes after loading their versions, so the
request path never touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from pointsman.errors import (
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    NotDeployed,
    PointsmanError,
    VersionNotFound,
)
from pointsman.project import Project
from pointsman.registry import VersionRecord, read_change_counter
from pointsman.routing import Route
from pointsman.runtimes import Runtime, load_runtime
from pointsman.types import Frame, Prediction
from pointsman.validation import build_frame, records_to_columns

log = logging.getLogger("pointsman.pipeline")


@dataclass
class Loaded:
    """A version loaded in this process, or the reason it could not be."""

    record: VersionRecord
    runtime: Runtime | None = None
    error: str | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def is_ready(self) -> bool:
        return self.runtime is not None


@dataclass
class Catalog:
    """Everything the request path reads, replaced whole on every refresh."""

    versions: dict[str, dict[int, VersionRecord]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    counter: int = -1


class Pipeline:
    """Serves every deployed model of a project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settings = project.settings
        self.catalog = Catalog()
        self.loaded: dict[tuple[str, int], Loaded] = {}
        self._load_lock = threading.Lock()
        self._refresh_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Read the catalog and load every routed version (blocking)."""
        self.refresh_now()

    async def run_refresher(self) -> None:
        """Poll the change counter forever; swap in new routes when it moves."""
        while True:
            await asyncio.sleep(self.settings.refresh_interval_s)
            try:
                counter = await anyio.to_thread.run_sync(read_change_counter, self.project.engine)
                if counter != self.catalog.counter:
                    await anyio.to_thread.run_sync(self.refresh_now)
            except Exception:  # the store may be down for a while: keep serving what we have
                log.exception("route refresh failed; serving the routes already loaded")

    def refresh_now(self, load_routed: bool = True) -> None:
        """Reload versions and routes from the store; load newly routed versions first."""
        counter = read_change_counter(self.project.engine)
        registry = self.project.registry
        versions: dict[str, dict[int, VersionRecord]] = {}
        for name in registry.model_names():
            versions[name] = {v.number: v for v in registry.list_versions(name)}
        routes = self.project.routes.all_current()
        for route in routes.values() if load_routed else ():
            for number in route.versions:
                self._ensure_loaded(versions[route.model][number])
        self.catalog = Catalog(versions, routes, counter)
        self._unload_unrouted()

    def _unload_unrouted(self) -> None:
        routed = {(m, v) for m, r in self.catalog.routes.items() for v in r.versions}
        for key in list(self.loaded):
            if key not in routed and time.time() - self.loaded[key].loaded_at > 60:
                self.loaded.pop(key, None)

    def _ensure_loaded(self, record: VersionRecord) -> Loaded:
        key = (record.model, record.number)
        with self._load_lock:
            found = self.loaded.get(key)
            if found is not None and (found.is_ready or time.time() - found.loaded_at < 10):
                return found
            loaded = self._load(record)
            self.loaded[key] = loaded
            return loaded

    def _load(self, record: VersionRecord) -> Loaded:
        try:
            path = self.project.registry.artifact_path(record)
            runtime = load_runtime(record.format, path, record.entrypoint)
            self._warm(record, runtime)
        except PointsmanError as exc:
            log.error("cannot load %s version %s: %s", record.model, record.number, exc)
            return Loaded(record, error=exc.message)
        except Exception as exc:
            log.exception("cannot load %s version %s", record.model, record.number)
            return Loaded(record, error=f"{type(exc).__name__}: {exc}")
        log.info("loaded %s version %s (%s)", record.model, record.number, record.format)
        return Loaded(record, runtime)

    def _warm(self, record: VersionRecord, runtime: Runtime) -> None:
        """Answer the input example once: a version that cannot is not ready."""
        if not record.input_example:
            return
        raw, n, problems = records_to_columns(record.input_example, record.signature)
        runtime.predict(build_frame(record.signature, raw, n, problems))

    # -- request path ---------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self.catalog.versions)

    def deployed_models(self) -> list[str]:
        return sorted(self.catalog.routes)

    def route_of(self, model: str) -> Route:
        catalog = self.catalog
        route = catalog.routes.get(model)
        if route is None:
            if model not in catalog.versions:
                raise ModelNotFound(model, sorted(catalog.versions))
            raise NotDeployed(model, [str(n) for n in sorted(catalog.versions[model])])
        return route

    def record_of(self, model: str, version: int | str | None = None) -> VersionRecord:
        """The version that answers `model` (its route's primary, or the pinned one)."""
        catalog = self.catalog
        if version is None or version == "":
            number = self.route_of(model).primary
        else:
            if model not in catalog.versions:
                raise ModelNotFound(model, sorted(catalog.versions))
            try:
                number = int(version)
            except (TypeError, ValueError):
                number = -1
        record = catalog.versions.get(model, {}).get(number)
        if record is None:
            raise VersionNotFound(model, str(version), [str(n) for n in catalog.versions[model]])
        return record

    async def runtime_of(self, record: VersionRecord) -> Runtime:
        """The loaded runtime of a version, loading a pinned unrouted one on first use."""
        loaded = self.loaded.get((record.model, record.number))
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(self._ensure_loaded, record)
        if loaded.runtime is None:
            raise ModelNotReady(record.model, str(record.number), loaded.error or "not loaded")
        return loaded.runtime

    async def predict(
        self, record: VersionRecord, frame: Frame, request_id: str | None = None
    ) -> Prediction:
        """Run `frame` through `record`'s runtime; the model raising becomes ModelFailed."""
        request_id = request_id or uuid.uuid4().hex
        runtime = await self.runtime_of(record)
        start = time.perf_counter()
        try:
            if frame.n_rows <= self.settings.inline_max_rows:
                outputs = runtime.predict(frame)
            else:
                outputs = await anyio.to_thread.run_sync(runtime.predict, frame)
        except Exception as exc:
            log.exception(
                "model %s version %s failed on request %s", record.model, record.number, request_id
            )
            raise ModelFailed(
                record.model, str(record.number), request_id, type(exc).__name__
            ) from exc
        elapsed = time.perf_counter() - start
        return Prediction(record.model, record.number, request_id, outputs, elapsed, elapsed)

    # -- health ---------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Every routed version and whether it is loaded and answered its example."""
        report: dict[str, Any] = {}
        ready = True
        for model, route in self.catalog.routes.items():
            for number in route.versions:
                loaded = self.loaded.get((model, number))
                ok = loaded is not None and loaded.is_ready
                ready &= ok
                report[f"{model}:{number}"] = (
                    "ready"
                    if ok
                    else (loaded.error if loaded is not None and loaded.error else "not loaded")
                )
        return {"ready": ready, "versions": report}

    def is_version_ready(self, record: VersionRecord) -> bool:
        loaded = self.loaded.get((record.model, record.number))
        return loaded is not None and loaded.is_ready
