"""Spool, redaction and shipper: what is written, where, and that it reaches the store once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from pointsman.errors import SpoolFull
from pointsman.logstore.query import LogQuery, count_predictions
from pointsman.logstore.redact import Redactor
from pointsman.logstore.shipper import Shipper, insert_records
from pointsman.logstore.spool import Spool, read_segment, segments_in
from pointsman.project import Project
from pointsman.settings import Redaction
from pointsman.store.tables import prediction_log


def record(request_id: str, role: str = "primary", version: int = 1, **more: Any) -> dict[str, Any]:
    return {
        "request_id": request_id, "role": role, "version": version, "model": "churn",
        "time": 1_700_000_000.0, "route_revision": 1, "client": None, "n_rows": 1,
        "inputs": {"age": [30]}, "outputs": {"predictions": [1]}, "latency_ms": 1.5,
        "model_ms": 1.0, "findings": None, "error_code": None, "error": None, "extra": None,
        **more,
    }  # fmt: skip


def spool_at(root: Path, **kw: Any) -> Spool:
    options: dict[str, Any] = {"segment_bytes": 1 << 20, "budget_bytes": 1 << 30, **kw}
    return Spool(root, **options)


def test_redaction_drops_hashes_and_truncates_with_the_salt() -> None:
    rule = Redaction(drop=["email"], hash=["customer"], truncate={"postcode": 3})
    redactor = Redactor({"churn": rule}, salt="pepper")
    columns: dict[str, list[Any]] = {
        "email": ["a@b.c"], "customer": ["c-17", None], "postcode": ["SW1A 1AA"], "age": [4],
    }  # fmt: skip
    kept = redactor.apply("churn", columns)
    assert "email" not in kept
    assert kept["customer"] == [hashlib.sha256(b"pepperc-17").hexdigest(), None]
    assert kept["postcode"] == ["SW1"]
    assert kept["age"] == [4]
    assert redactor.apply("iris", columns) is columns  # no rule: untouched


def test_append_writes_one_line_per_record_before_returning(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    spool.append(record("a", outputs={"probabilities": np.array([[0.25, 0.75]])}))
    spool.append(record("b", version=np.int64(2)))  # type: ignore[arg-type]  # numpy's own
    (segment,) = segments_in(spool.folder)
    lines = read_segment(segment)  # readable at once: no buffering in the process
    assert [r["request_id"] for r in lines] == ["a", "b"]
    assert lines[0]["outputs"]["probabilities"] == [[0.25, 0.75]]
    assert lines[1]["version"] == 2
    spool.close()


def test_segments_roll_over_and_seal_leaves_the_open_one_out(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, segment_bytes=4096)
    for i in range(40):
        spool.append(record(f"r{i}"))
    assert len(segments_in(spool.folder)) >= 2
    spool.seal()
    sealed = spool.sealed_segments()
    assert sum(len(read_segment(s)) for s in sealed) == 40
    assert len(segments_in(spool.folder)) == len(sealed) + 1
    spool.close()


def test_past_the_budget_records_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, budget_bytes=4096)
    for i in range(100):
        spool.append(record(f"r{i}"))
    assert 0 < spool.appended < 100
    assert spool.dropped == 100 - spool.appended
    spool.close()


def test_past_the_budget_the_refuse_policy_raises_spool_full(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, budget_bytes=4096, refuse_when_full=True)
    with pytest.raises(SpoolFull, match="log_spool_budget_bytes"):
        for i in range(100):
            spool.append(record(f"r{i}"))
    spool.close()


def test_shipper_stores_each_record_once_and_deletes_segments(
    tmp_path: Path, project: Project
) -> None:
    spool = spool_at(tmp_path / "spool")
    for i in range(25):
        spool.append(record(f"r{i}"))
        spool.append(record(f"r{i}", role="shadow", version=2))
    spool.seal()
    shipper = Shipper(spool.root, project.engine)
    assert shipper.ship() == 50
    assert spool.sealed_segments() == []
    assert [s.stat().st_size for s in segments_in(spool.folder)] == [0]  # the open one
    # A crash between insert and delete ships a segment again: a no-op.
    insert_records(project.engine, [record("r3"), record("r3", role="shadow", version=2)])
    assert count_predictions(project.engine, LogQuery()) == 50
    assert count_predictions(project.engine, LogQuery(role="shadow")) == 25
    with project.engine.connect() as conn:
        row = conn.execute(sa.select(prediction_log).limit(1)).mappings().one()
    assert row["inputs"] == {"age": [30]} and row["outputs"] == {"predictions": [1]}
    spool.close()
    assert not spool.folder.exists()  # nothing left to ship: the folder goes


def test_a_dead_workers_spool_is_shipped_whole(tmp_path: Path, project: Project) -> None:
    root = tmp_path / "spool"
    script = (
        "import os, sys; from pathlib import Path; from pointsman.logstore.spool import Spool\n"
        "from tests.logstore.test_spool import record\n"
        "s = Spool(Path(sys.argv[1]), segment_bytes=1 << 20, budget_bytes=1 << 30)\n"
        "[s.append(record(f'dead{i}')) for i in range(30)]\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(root)], check=False, cwd=os.getcwd())
    (dead,) = list(root.iterdir())
    live = spool_at(root)
    # Its open segment too: no process writes it any more.
    assert Shipper(root, project.engine, only=live.folder).ship() == 30
    assert not dead.exists()
    assert count_predictions(project.engine, LogQuery(model="churn")) == 30
    live.close()


def test_a_live_workers_open_segment_is_left_alone(tmp_path: Path, project: Project) -> None:
    root = tmp_path / "spool"
    other = spool_at(root)
    other.append(record("theirs"))
    shipper = Shipper(root, project.engine)
    assert shipper.ship() == 0  # being written (unsealed), and its worker lives
    other.seal()
    mine = spool_at(root)
    assert Shipper(root, project.engine, only=mine.folder).ship() == 0  # not mine to ship
    assert other.folder.exists()
    assert shipper.ship() == 1  # sealed: the server's shipper takes it
    other.append(record("later"))
    other.close()  # a stopped worker: its last segment is shipped with its folder
    assert shipper.ship() == 1
    assert not other.folder.exists()
    assert count_predictions(project.engine, LogQuery(model="churn")) == 2
    mine.close()
