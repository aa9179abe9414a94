"""Chunks scored on an existing Dask cluster (`--cluster tcp://scheduler:8786`).

The artifact's bytes are scattered to every worker once; each worker checks them against
the sha256 the version recorded before loading them, and keeps the loaded version for the
job's next chunks. Workers return the scored tables; the part files are written here, so
the workers need no share of this machine's disk.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from pointsman.batch.executors import WorkerSetup, loading_libraries
from pointsman.batch.score import Scored, Scorer
from pointsman.errors import (
    ArtifactTampered,
    BadBatchSource,
    ChunkFailed,
    ConfigError,
    PointsmanError,
)
from pointsman.runtimes import load_runtime


class DaskExecutor:
    """A client of a running Dask scheduler; the version shipped to its workers once."""

    def __init__(self, address: str, setup: WorkerSetup) -> None:
        self.address = address
        self.setup = setup
        self.capacity = 2
        self.client: Any = None
        self.artifact: Any = None
        self.futures: list[Any] = []

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client
        except ImportError as exc:
            raise ConfigError(
                "--cluster needs dask.distributed: install pointsman[dask] "
                "(pip install 'pointsman[dask]')."
            ) from exc
        version = self.setup.version
        path = self.setup.artifacts.verified(version.artifact, version.sha256)
        if path.is_dir():
            raise BadBatchSource(
                f"{version.model} version {version.number} is a folder artifact; --cluster "
                "ships single-file artifacts (run it without --cluster)."
            )
        try:
            self.client = Client(self.address, timeout=30)  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise BadBatchSource(f"Cannot reach the Dask scheduler {self.address}: {exc}") from exc
        threads = sum(self.client.nthreads().values()) or 1
        self.capacity = 2 * threads
        self.artifact = self.client.scatter(path.read_bytes(), broadcast=True, hash=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()

    def submit(self, chunk: int, first_row: int, table: pa.Table) -> Any:
        setup = replace(self.setup, artifacts=None)  # type: ignore[arg-type]
        future = self.client.submit(
            score_on_worker, self.artifact, setup, chunk, first_row, table, pure=False
        )
        self.futures = [f for f in self.futures if not f.done()]
        self.futures.append(future)
        return future

    def stop(self) -> None:
        """Cancel the chunks in flight; the cluster's workers are not the job's to end."""
        if self.client is not None and self.futures:
            self.client.cancel(self.futures)


_scorers: dict[tuple[str, str], Scorer] = {}
_lock = threading.Lock()


def score_on_worker(
    artifact: bytes, setup: WorkerSetup, chunk: int, first_row: int, table: pa.Table
) -> Scored:
    """Score one chunk on a Dask worker, loading the shipped version on its first chunk."""
    try:
        return scorer_of(artifact, setup).score(chunk, first_row, table)
    except PointsmanError as exc:
        raise ChunkFailed(exc.message) from None


def scorer_of(artifact: bytes, setup: WorkerSetup) -> Scorer:
    """The worker's Scorer for this job: the shipped bytes checked, then loaded, once."""
    version = setup.version
    key = (setup.job_id, version.sha256)
    with _lock:
        scorer = _scorers.get(key)
        if scorer is None:
            runtime = None
            if not setup.dry_run:
                digest = hashlib.sha256(artifact).hexdigest()
                if digest != version.sha256:
                    where = f"the copy of {version.artifact} shipped to this worker"
                    raise ArtifactTampered(where, version.sha256, digest)
                folder = Path(tempfile.mkdtemp(prefix="pointsman-batch-"))
                path = folder / Path(version.artifact).name
                path.write_bytes(artifact)
                trusted = tuple(version.lineage.get("trusted_types") or ())
                with loading_libraries(freeze=False):
                    runtime = load_runtime(version.format, path, version.entrypoint, trusted)
            scorer = Scorer(
                version,
                runtime,
                setup.policy,
                setup.keep,
                setup.job_id,
                setup.text_source,
                setup.log_rows,
            )
            _scorers[key] = scorer
        return scorer
