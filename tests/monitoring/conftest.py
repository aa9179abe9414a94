"""The monitoring tests' project: churn deployed, and traffic logged as the shipper writes it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pointsman.demo.churn import TARGET, make_data
from pointsman.logstore.shipper import insert_records
from pointsman.project import Project
from tests.api.conftest import register_churn


@pytest.fixture
def churn(project: Project, churn_files: list[tuple[Path, Path]]) -> Project:
    project.routes.deploy("churn", register_churn(project, churn_files)[0], "test")
    return project


def log_traffic(
    project: Project, rows: int, seed: int, shift: float = 0.0, ago_s: float = 60
) -> None:
    """`rows` logged single-row requests to churn v1, `ago_s` seconds ago, as the shipper writes."""
    frame = make_data(rows, seed).drop(columns=[TARGET])
    frame["tenure_months"] = frame["tenure_months"] + shift
    records = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        inputs = {k: [v.item() if isinstance(v, np.generic) else v] for k, v in row.items()}
        records.append(
            {
                "request_id": uuid.uuid4().hex, "role": "primary", "version": 1,
                "model": "churn", "time": time.time() - ago_s + i * 1e-3,
                "route_revision": 1, "client": None, "n_rows": 1, "inputs": inputs,
                "outputs": {"predictions": [int(row["support_calls"] >= 3)]},
                "latency_ms": 1.0, "model_ms": 0.5, "findings": None, "error_code": None,
                "error": None, "extra": None,
            }
        )  # fmt: skip
    insert_records(project.engine, records)
