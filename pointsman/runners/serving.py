"""The supervisor of a server: runs what the store routes, plus what workers ask for."""

from __future__ import annotations

import logging
import math
import threading
import time

from pointsman.alerts import record_event
from pointsman.project import Project
from pointsman.registry.models import read_change_counter
from pointsman.runners.directory import RunDir
from pointsman.runners.remote import RemoteRunners
from pointsman.runners.supervisor import Key, OnEvent, Supervisor, Wanted
from pointsman.store.changes import RESYNC, ChangeListener
from pointsman.store.outage import OutageLog, probe_of

log = logging.getLogger("pointsman.runners")

IDLE_S = 300.0  # a version asked for (pinned) but routed nowhere runs this long after use
ASK_S = 0.25  # how often workers' asks (a pinned version) are read, store polled or not
SUPERVISED_KINDS = frozenset({"routes", "versions", "runners", RESYNC})


class StoreWanted:
    """Routed versions and versions workers asked for, re-read when the store changes.

    The store's change counter is read every refresh_interval_s / 2; with a listener (on
    PostgreSQL) a pushed change makes the next call read it, and the workers' asks are read
    every ASK_S whatever the cadence.
    """

    def __init__(
        self, project: Project, run_dir: RunDir, listener: ChangeListener | None = None
    ) -> None:
        self.project = project
        self.run_dir = run_dir
        self.listener = listener
        self.counter = -1
        self.asked: list[Key] = []
        self.checked = self.asked_at = -math.inf  # the first call reads (monotonic: since boot)
        self.current: Wanted = {}
        settings = project.settings
        self.remote = RemoteRunners(settings.remote_runners, settings.runner_secret)
        self._changed = threading.Event()
        if listener is not None:
            listener.subscribe(self.heard)

    def heard(self, kind: str) -> None:
        """A pushed change (in the listener's thread): look at the store on the next call."""
        if kind in SUPERVISED_KINDS:
            self._changed.set()

    def __call__(self) -> Wanted:
        now = time.monotonic()
        settings = self.project.settings
        poll_s = settings.refresh_interval_s
        if self.listener is not None and self.listener.is_listening:
            poll_s = max(poll_s, settings.listen_poll_interval_s)
        changed = self._changed.is_set()
        if not changed and now - self.checked < poll_s / 2:
            if now - self.asked_at < min(poll_s / 2, ASK_S):
                return self.current
            self.asked_at = now
            asked = sorted(self.run_dir.wanted(IDLE_S))
            if asked == self.asked:
                return self.current
            self.asked = asked
            self.current = self._read(asked)
            return self.current
        self._changed.clear()
        self.checked = self.asked_at = now
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
            if self.remote.is_remote(model, number):
                continue  # its runners run elsewhere: the server calls them over TCP
            version = registry.find_version(model, number)
            if version is not None:
                wanted[model, number] = (version, specs[model, number])
        return wanted


def build_supervisor(
    project: Project, run_dir: RunDir, listener: ChangeListener | None = None
) -> Supervisor:
    """The supervisor of a server on `project`, telling alerts of restarts and failed loads;
    with a listener, pushed route, version and runner changes reach it at once."""
    return Supervisor(
        run_dir,
        project.registry.artifacts,
        StoreWanted(project, run_dir, listener),
        project.enforcement,
        drain_s=project.settings.runner_drain_s,
        on_event=events_of(project),
        outage=OutageLog(probe=probe_of(project.engine)),
    )


def events_of(project: Project) -> OnEvent:
    """Runner restarts and failed loads recorded as store events (alerts read them)."""
    engine = project.engine

    def on_event(model: str, number: int, reason: str, detail: str) -> None:
        kind = "version_load_failed" if reason.startswith("load") else "runner_restart"
        try:
            record_event(engine, kind, model, f"version {number}: {reason}: {detail}")
        except Exception:  # the store may be down: the supervisor's log line still says it
            log.warning("could not record the %s of %s version %s", kind, model, number)

    return on_event
