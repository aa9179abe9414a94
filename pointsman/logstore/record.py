"""A prediction record: what came in (after redaction), what went out, and what happened."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pointsman.types import Frame, Outputs


def build_record(
    *,
    request_id: str,
    role: str,
    model: str,
    version: int,
    frame: Frame,
    inputs: dict[str, list[Any]],
    outputs: Outputs | None,
    latency_s: float,
    model_s: float | None,
    route_revision: int | None = None,
    client: str | None = None,
    findings: list[dict[str, Any]] | None = None,
    error_code: str | None = None,
    error: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record as a JSON-able dict (numpy arrays are serialized by orjson as they are)."""
    return {
        "request_id": request_id,
        "role": role,
        "version": version,
        "model": model,
        "time": time.time(),
        "route_revision": route_revision,
        "client": client,
        "n_rows": frame.n_rows,
        "inputs": inputs,
        "outputs": None if outputs is None else outputs_json(outputs),
        "latency_ms": latency_s * 1000,
        "model_ms": None if model_s is None else model_s * 1000,
        "findings": findings or None,
        "error_code": error_code,
        "error": error,
        "extra": extra or None,
        # Which runtime answered: original or compiled (None when nothing answered).
        "runtime": None if outputs is None else outputs.runtime,
    }


def columns_of(frame: Frame) -> dict[str, list[Any]]:
    """A frame's columns as plain lists (NaN becomes null when serialized)."""
    return {name: column.tolist() for name, column in frame.columns.items()}


def outputs_json(outputs: Outputs) -> dict[str, Any]:
    """Predictions, and probabilities with their classes when the model gives them."""
    predictions = outputs.predictions
    if isinstance(predictions, np.ndarray):
        predictions = predictions.tolist()
    body: dict[str, Any] = {"predictions": predictions}
    if outputs.probabilities is not None:
        body["probabilities"] = outputs.probabilities
        body["classes"] = outputs.classes
    return body
