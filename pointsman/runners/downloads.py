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
        """None when the artifact is on local disk; "" while it downloads (started here if
        need be); else why it could not be downloaded (the next check tries again)."""
        if store.is_local(version.artifact):
            return None
        download = self.pending.get(version.sha256)
        if download is None:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="pointsman-download")
            download = self.pool.submit(store.fetch, version.artifact, version.sha256)
            self.pending[version.sha256] = download
        if not download.done():
            return ""
        del self.pending[version.sha256]
        error = download.exception()
        if error is None:
            return None
        return error.message if isinstance(error, PointsmanError) else repr(error)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
