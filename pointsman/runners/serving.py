"""The supervisor of a server: runs what the store routes, plus what workers ask for."""

from __future__ import annotations

import logging
import time

from pointsman.alerts import record_event
from pointsman.project import Project
from pointsman.registry import read_change_counter
from pointsman.runners.directory import RunDir
from pointsman.runners.supervisor import Key, Supervisor, Wanted

log = logging.getLogger("pointsman.runners")

IDLE_S = 300.0  # a version asked for (pinned) but routed nowhere runs this long after use


class StoreWanted:
    """Routed versions and versions workers asked for, re-read when the store changes."""

    def __init__(self, project: Project, run_dir: RunDir) -> None:
        self.project = project
        self.run_dir = run_dir
        self.counter = -1
        self.asked: list[Key] = []
        self.checked = 0.0
        self.current: Wanted = {}

    def __call__(self) -> Wanted:
        now = time.monotonic()
        if now - self.checked < self.project.settings.refresh_interval_s / 2:
            return self.current
        self.checked = now
        counter = read_change_counter(self.project.engine)
        asked = sorted(self.run_dir.wanted(IDLE_S))
        if counter != self.counter or asked != self.asked:
            self.counter, self.asked = counter, asked
            self.current = self._read(asked)
        return self.current

    def _read(self, asked: list[Key]) -> Wanted:
        routes = self.project.routes.all_current()
        keys = {(m, n) for m, route in routes.items() for n in route.versions}
        keys |= set(asked)
        specs = self.project.runners.specs(sorted(keys))
        registry = self.project.registry
        wanted: Wanted = {}
        for model, number in sorted(keys):
            version = registry.find_version(model, number)
            if version is not None:
                wanted[model, number] = (version, specs[model, number])
        return wanted


def build_supervisor(project: Project, run_dir: RunDir) -> Supervisor:
    """The supervisor of a server on `project`, telling alerts of restarts and failed loads."""
    engine = project.engine

    def on_event(model: str, number: int, reason: str, detail: str) -> None:
        kind = "version_load_failed" if reason.startswith("load") else "runner_restart"
        try:
            record_event(engine, kind, model, f"version {number}: {reason}: {detail}")
        except Exception:  # the store may be down: the supervisor's log line still says it
            log.warning("could not record the %s of %s version %s", kind, model, number)

    return Supervisor(
        run_dir,
        project.registry.artifacts,
        StoreWanted(project, run_dir),
        project.enforcement,
        drain_s=project.settings.runner_drain_s,
        on_event=on_event,
    )
