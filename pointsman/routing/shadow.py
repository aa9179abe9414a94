"""Shadows: the same input run on other versions after the response, compared, never returned.

Work is bounded: a queue of fixed size feeds one background task; when the queue is full
the copy is dropped and counted, so a slow or failing shadow never slows the primary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from pointsman.routing.agreement import Agreement, rows_agree
from pointsman.routing.stats import Counts
from pointsman.types import Frame, Outputs

log = logging.getLogger("pointsman.shadow")


@dataclass
class ShadowJob:
    """One copy of a request for one shadow version."""

    model: str
    revision: int
    version: int
    frame: Frame
    primary: Outputs
    request_id: str
    protocol: str = ""  # the primary request's, for the metrics
    agreement: Agreement = field(default_factory=Agreement)  # the route's tolerance


def compare(
    primary: Outputs, shadow: Outputs, cell: Counts, agreement: Agreement | None = None
) -> None:
    """Count rows that agree under the route's tolerance (regressors within it, classifiers
    on the label and, when set, probabilities) and track the largest probability difference."""
    same = rows_agree(
        primary.predictions, shadow.predictions, agreement or Agreement(),
        primary.probabilities, shadow.probabilities,
        regression=False if primary.classes is not None else None,
    )  # fmt: skip
    cell.compared += len(primary.predictions)
    cell.agreed += int(same.sum())
    if (
        primary.probabilities is not None
        and shadow.probabilities is not None
        and primary.classes == shadow.classes
        and primary.probabilities.shape == shadow.probabilities.shape
    ):
        diff = float(np.max(np.abs(primary.probabilities - shadow.probabilities)))
        cell.prob_diff_max = max(cell.prob_diff_max, diff)


Runner = Callable[[ShadowJob], Awaitable[None]]


class ShadowQueue:
    """A bounded queue of shadow jobs and the task that drains it."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=size)
        self.dropped = 0
        self.done = 0
        self.failed = 0

    def offer(self, job: ShadowJob) -> bool:
        """Queue a job without waiting; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(job)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            return False

    async def drain_forever(self, run: Runner) -> None:
        """Run queued jobs one at a time with `run`, until cancelled."""
        while True:
            job = await self.queue.get()
            try:
                await run(job)
                self.done += 1
            except Exception:  # a failing shadow is counted, never propagated
                self.failed += 1
                log.debug("shadow %s v%s failed", job.model, job.version, exc_info=True)
            finally:
                self.queue.task_done()
