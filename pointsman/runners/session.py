"""Runners for a command run from a terminal: started for the versions it needs, stopped
when it ends. `pointsman predict`, `explain`, `replay` and the preflight of a route change
(each new version must load and answer its input example before it may be routed) run
models this way, under the same limits as a server's runners.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from pointsman.errors import ModelNotReady
from pointsman.registry import ArtifactStore, VersionRecord
from pointsman.runners import limits
from pointsman.runners.client import RunnerFault, call_once
from pointsman.runners.directory import RunDir, new_run_dir, runner_name
from pointsman.runners.spec import RunnerSpec
from pointsman.runners.supervisor import Supervisor, Wanted
from pointsman.types import Frame, Outputs


class RunnerSession:
    """One runner per version asked for; `predict` blocks (no event loop needed)."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        enforcement: limits.Enforcement,
        specs: Callable[[str, int], RunnerSpec] | None = None,
    ) -> None:
        self.run_dir = RunDir(new_run_dir())
        self.specs = specs or (lambda model, number: RunnerSpec())
        self._wanted: Wanted = {}
        self.supervisor = Supervisor(
            self.run_dir, artifacts, lambda: dict(self._wanted), enforcement, drain_s=0.0
        )
        self.supervisor.start()

    def __enter__(self) -> RunnerSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, versions: list[tuple[VersionRecord, RunnerSpec]]) -> None:
        """Run these versions (one replica each) and wait until each is warm or failed."""
        for version, spec in versions:
            self._wanted[version.model, version.number] = (version, _single(spec))
        for version, spec in versions:
            self._wait(version, spec)

    def _wait(self, version: VersionRecord, spec: RunnerSpec) -> None:
        name = runner_name(version.model, version.number, 0)
        deadline = time.monotonic() + spec.load_timeout_s + 5
        while time.monotonic() < deadline:
            runner = self.supervisor.runners.get(((version.model, version.number), 0))
            if runner is not None and runner.state == "ready":
                return
            if runner is not None and runner.state == "failed":
                raise ModelNotReady(version.model, str(version.number), runner.error)
            time.sleep(0.02)
        raise ModelNotReady(version.model, str(version.number), f"runner {name} did not start")

    def warm(self, version: VersionRecord) -> None:
        """Start `version`'s runner unless it runs already; ModelNotReady if it cannot."""
        if (version.model, version.number) not in self._wanted:
            self.start([(version, self.specs(version.model, version.number))])

    def predict(self, version: VersionRecord, frame: Frame) -> Outputs:
        """The version's answer for `frame`; RunnerFault when its runner gives none."""
        self.warm(version)
        spec = self._wanted[version.model, version.number][1]
        path = self.run_dir.socket(runner_name(version.model, version.number, 0))
        return call_once(path, frame, spec.timeout_s)

    def pid(self, version: VersionRecord) -> int | None:
        """The process id of `version`'s runner (for measuring it), None when not running."""
        runner = self.supervisor.runners.get(((version.model, version.number), 0))
        process = runner.process if runner is not None else None
        return process.pid if process is not None else None

    def close(self) -> None:
        self.supervisor.stop()
        self.run_dir.remove()


def preflight(
    artifacts: ArtifactStore,
    enforcement: limits.Enforcement,
    versions: list[tuple[VersionRecord, RunnerSpec]],
) -> None:
    """Load each version in a runner and answer its input example; ModelNotReady if one cannot."""
    if not versions:
        return
    with RunnerSession(artifacts, enforcement) as session:
        session.start(versions)


def _single(spec: RunnerSpec) -> RunnerSpec:
    return spec.with_changes({"replicas": 1})


__all__ = ["RunnerFault", "RunnerSession", "preflight"]
