"""The baseline pointsman is measured against: the least a hand-written model server does.

A bare Starlette app that loads one scikit-learn joblib file and, on POST /predict, parses
{"rows": [...]} with orjson, builds `pd.DataFrame(rows)`, calls `predict_proba` and answers
the label and the probabilities as JSON. No validation, no routing, no request ids, no error
shapes: whatever pointsman adds on top of this is what `serve_vs_minimal.py` measures.

Run by the benchmark as
    BENCH_MODEL_PATH=/path/model.joblib uvicorn minimal_app:app --app-dir bench --workers W
"""

from __future__ import annotations

import os

import joblib
import numpy as np
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL_PATH = os.environ.get("BENCH_MODEL_PATH", "")
if not MODEL_PATH:
    raise SystemExit("Set BENCH_MODEL_PATH to the joblib file to serve.")

model = joblib.load(MODEL_PATH)
classes = model.classes_
labels = [str(c) for c in classes]


async def predict(request: Request) -> Response:
    """Rows in, {"predictions": [...], "probabilities": [{label: p}]} out."""
    rows = orjson.loads(await request.body())["rows"]
    proba = model.predict_proba(pd.DataFrame(rows))
    body = {
        "predictions": classes[np.argmax(proba, axis=1)].tolist(),
        "probabilities": [dict(zip(labels, row, strict=True)) for row in proba.tolist()],
    }
    return Response(orjson.dumps(body), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
