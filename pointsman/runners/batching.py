"""Adaptive batching in a runner: the calls that queued while the model was busy go to it
as one call, and each caller gets back exactly its own rows.

Only calls whose frames have the same columns (names, order and dtypes) are merged; a
runner serves one version, so calls for another version never meet. Nothing here waits:
an idle runner takes a lone call straight to the model, and the runner decides whether to
wait for a batch to fill (`max_wait_ms`, only while calls are already arriving together).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol, TypeVar

import numpy as np

from pointsman.types import Frame, Outputs


class Queued(Protocol):
    @property
    def frame(self) -> Frame: ...


J = TypeVar("J", bound=Queued)


def layout(frame: Frame) -> tuple[tuple[str, str], ...]:
    """What two frames must share to be merged: column names, order and dtypes."""
    return tuple((name, column.dtype.str) for name, column in frame.columns.items())


def fill(queue: deque[J], batch: list[J], max_rows: int) -> int:
    """Move the queued calls that fit `batch` (same layout, at most `max_rows` rows in all)
    from `queue` into it, keeping the order of both; the batch's rows are returned."""
    rows = sum(job.frame.n_rows for job in batch)
    if not queue or rows >= max_rows:
        return rows
    shape = layout(batch[0].frame)
    kept: list[J] = []
    while queue:
        job = queue.popleft()
        if rows + job.frame.n_rows <= max_rows and layout(job.frame) == shape:
            batch.append(job)
            rows += job.frame.n_rows
        else:
            kept.append(job)
    queue.extendleft(reversed(kept))
    return rows


def merge(frames: list[Frame]) -> Frame:
    """One frame holding every row of `frames`, in order."""
    if len(frames) == 1:
        return frames[0]
    columns = {
        name: np.concatenate([frame.columns[name] for frame in frames])
        for name in frames[0].columns
    }
    return Frame(columns, sum(frame.n_rows for frame in frames))


def split(outputs: Outputs, sizes: list[int]) -> list[Outputs]:
    """The outputs of a merged call cut back into one Outputs per call of `sizes` rows."""
    total = sum(sizes)
    probabilities = outputs.probabilities
    if len(outputs.predictions) != total or (
        probabilities is not None and len(probabilities) != total
    ):
        got = len(outputs.predictions)
        raise ValueError(f"the model answered {got} rows for a batch of {total}")
    parts: list[Outputs] = []
    start = 0
    for size in sizes:
        end = start + size
        part: Any = None if probabilities is None else probabilities[start:end]
        parts.append(Outputs(outputs.predictions[start:end], part, outputs.classes))
        start = end
    return parts
