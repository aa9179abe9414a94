"""Artifacts brought to local disk before their runners start (a store on S3).

Downloads run in threads of the supervisor's process, one per artifact, outside the runners'
limits: a runner's memory and disk limits are for its model, not for a download, and the
runner never needs the S3 client. The runner still verifies the sha256 as it loads.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pointsman.errors import PointsmanError
from pointsman.registry import ArtifactStore, VersionRecord

THREADS = 2


class Downloads:
    """The downloads under way, by sha256."""

    def __init__(self) -> None:
        self.pending: dict[str, Future[Path]] = {}
        self.pool: ThreadPoolExecutor | None = None

    def check(self, store: ArtifactStore, version: VersionRecord) -> str | None:
        """None when the version's artifacts (its compiled model too) are on local disk; ""
        while they download (started here if need be); else why one could not be downloaded
        (the next check tries again)."""
        for rel, sha in needed(version):
            why_not = self._check_one(store, rel, sha)
            if why_not is not None:
                return why_not
        return None

    def _check_one(self, store: ArtifactStore, rel: str, sha: str) -> str | None:
        if store.is_local(rel):
            return None
        download = self.pending.get(sha)
        if download is None:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="pointsman-download")
            download = self.pool.submit(store.fetch, rel, sha)
            self.pending[sha] = download
        if not download.done():
            return ""
        del self.pending[sha]
        error = download.exception()
        if error is None:
            return None
        return error.message if isinstance(error, PointsmanError) else repr(error)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def needed(version: VersionRecord) -> list[tuple[str, str]]:
    """(relative path, sha256) of what a runner of `version` may load: the artifact, and the
    compiled model when there is one (the runtime setting picks between them)."""
    out = [(version.artifact, version.sha256)]
    compiled = version.compiled or {}
    if compiled.get("artifact"):
        out.append((str(compiled["artifact"]), str(compiled["sha256"])))
    return out
