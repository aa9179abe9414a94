"""BentoML 1.4's side of `serve_vs_bentoml.py`: the same joblib file behind adaptive batching.

BentoML's documented service: a `@bentoml.service` class that loads the model once and a
`@bentoml.api(batchable=True)` method. Requests that arrive together are merged along the
first dimension (the list of rows) into one `predict_proba` call and the answers are cut back
per request. Its batch limit is set to 256 rows, pointsman's `max_batch_rows` default; its
wait limit is BentoML's default. Access logging is off, as on the other servers.

It runs in BentoML's own virtual environment (never pointsman's), as
    BENCH_MODEL_PATH=/path/model.joblib bentoml serve bentoml_service:Churn --working-dir bench

POST /predict with {"rows": [{feature: value}, ...]} answers a JSON list with one
{"prediction": label, "probabilities": {label: p}} per row.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import numpy as np
import pandas as pd

MODEL_PATH = os.environ.get("BENCH_MODEL_PATH", "")
if not MODEL_PATH:
    raise SystemExit("Set BENCH_MODEL_PATH to the joblib file to serve.")
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))


@bentoml.service(workers=WORKERS, logging={"access": {"enabled": False}})
class Churn:
    def __init__(self) -> None:
        self.model = joblib.load(MODEL_PATH)
        self.classes = self.model.classes_
        self.labels = [str(c) for c in self.classes]

    @bentoml.api(batchable=True, max_batch_size=256)
    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        proba = self.model.predict_proba(pd.DataFrame(rows))
        predictions = self.classes[np.argmax(proba, axis=1)].tolist()
        return [
            {"prediction": label, "probabilities": dict(zip(self.labels, row, strict=True))}
            for label, row in zip(predictions, proba.tolist(), strict=True)
        ]
