"""Prediction records written straight into the store, as the shipper writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from pointsman.store.tables import prediction_log


def log_rows(
    engine: Engine,
    model: str,
    version: int,
    rows: list[dict[str, Any]],
    role: str = "primary",
    when: datetime | None = None,
) -> None:
    """One record per row dict: `request_id`, `inputs` (one row), `prediction`, and
    `probabilities`/`classes` for classifiers."""
    when = when or datetime.now(UTC)
    values = []
    for r in rows:
        outputs: dict[str, Any] = {"predictions": [r["prediction"]]}
        if "probabilities" in r:
            outputs["probabilities"] = [r["probabilities"]]
            outputs["classes"] = r["classes"]
        values.append(
            {
                "request_id": r["request_id"],
                "role": role,
                "version": version,
                "model": model,
                "time": r.get("time", when),
                "n_rows": 1,
                "inputs": {k: [v] for k, v in r.get("inputs", {}).items()},
                "outputs": outputs,
                "latency_ms": 1.0,
            }
        )
    with engine.begin() as conn:
        conn.execute(prediction_log.insert(), values)
