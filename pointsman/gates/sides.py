"""What a release test runs: registered versions in runners, or a file not yet registered.

A version runs in a runner process under its model's limits, as `replay` runs it. A file
(`model.joblib`, `model.py:Class`) is loaded in this process: it is the caller's own
candidate, about to be registered (only files you trust: loading runs their code).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pointsman.errors import BadRequest
from pointsman.registry import VersionRecord
from pointsman.registry.register import split_entrypoint
from pointsman.runners.session import RunnerSession
from pointsman.runtimes import detect_format, load_runtime
from pointsman.types import Frame, Outputs, Signature
from pointsman.validation.signature import build_frame


@dataclass
class Side:
    """One side of a comparison: a name people read, and how to get its answers."""

    name: str
    predict: Callable[[Frame], Outputs]


def version_side(session: RunnerSession, record: VersionRecord) -> Side:
    """A registered version, run in its runner (started now: it fails here if it cannot)."""
    session.warm(record)
    return Side(f"v{record.number}", lambda frame: session.predict(record, frame))


def file_side(spec: str) -> Side:
    """A model file not registered yet, loaded in this process."""
    path, entrypoint = split_entrypoint(spec)
    if not path.exists():
        raise BadRequest(
            f"{spec!r} is neither a version number nor an existing model file; give a version "
            "(e.g. 3) or a path (model.joblib, model.py:Class)."
        )
    runtime = load_runtime(detect_format(path, entrypoint), path, entrypoint)
    return Side(Path(spec).name, runtime.predict)


def frame_for(signature: Signature, data: pd.DataFrame, what: str) -> Frame:
    """`data`'s columns the signature names, as the frame a version gets; BadRequest names
    the missing ones."""
    missing = [n for n in signature.names if n not in data.columns]
    if missing:
        raise BadRequest(
            f"{what} lacks the model's input(s) {', '.join(missing)} "
            f"(columns: {', '.join(map(str, data.columns))})."
        )
    columns = {n: data[n].tolist() for n in signature.names}
    return build_frame(signature, columns, len(data))


def timed(side: Side, frame: Frame) -> tuple[Outputs, float]:
    """`side`'s answer for `frame` and the seconds it took."""
    start = time.perf_counter()
    outputs = side.predict(frame)
    return outputs, time.perf_counter() - start
