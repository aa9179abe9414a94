"""`pointsman batch --cluster`: chunks on a Dask LocalCluster of processes, same output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pointsman.batch.cluster import scorer_of
from pointsman.errors import ArtifactTampered
from tests.batch.test_batch_cli import batch, table_with_faults

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        yield cluster.scheduler_address


def test_a_job_on_a_dask_cluster_writes_what_a_local_run_writes(
    churn_project: list[str], scheduler: str, tmp_path: Path
) -> None:
    table_with_faults().to_csv(tmp_path / "in.csv", index=False)
    batch(churn_project, str(tmp_path / "in.csv"), "-o", str(tmp_path / "local.parquet"))
    shown = batch(
        churn_project,
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "dask.parquet"),
        "--cluster",
        scheduler,
    )
    assert "succeeded" in shown
    for name in ("{}.parquet", "{}.rejects.parquet"):
        local = pd.read_parquet(tmp_path / name.format("local")).drop(columns=["job_id"])
        remote = pd.read_parquet(tmp_path / name.format("dask")).drop(columns=["job_id"])
        pd.testing.assert_frame_equal(local, remote)


def test_a_worker_refuses_shipped_bytes_that_are_not_the_version(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Version:
        model: str = "churn"
        number: int = 1
        sha256: str = "0" * 64
        artifact: str = "ab/model.joblib"

    @dataclass
    class Setup:
        version: Version
        job_id: str = "j"
        dry_run: bool = False

    with pytest.raises(ArtifactTampered, match="shipped to this worker"):
        scorer_of(b"not the model", Setup(Version()))  # type: ignore[arg-type]
