"""The supervisor turns each runner's slot counters into Prometheus counters: what a slot
added since its last read, and all of it when a new process started the slot again at 0."""

from __future__ import annotations

import mmap
from pathlib import Path

from pointsman.monitoring import metrics
from pointsman.runners.process import SLOT
from pointsman.runners.spec import RunnerSpec
from pointsman.runners.supervisor import Runner


def counted(name: str, model: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        f"{name}_total", {"model_name": model, "model_version": "1"}
    )
    return value or 0.0


def test_counts_survive_a_slot_that_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "m-1-0.slot"
    path.write_bytes(bytes(SLOT.size))
    with path.open("r+b") as file:
        slot = mmap.mmap(file.fileno(), SLOT.size)
    runner = Runner(("slots", 1), 0, "slots-1-0", None, RunnerSpec())  # type: ignore[arg-type]
    runner.slot = slot
    before = (
        counted("pointsman_runner_requests", "slots"),
        counted("pointsman_runner_model_calls", "slots"),
    )

    SLOT.pack_into(slot, 0, 0.0, 0.0, 0, 40, 10)
    runner.sample()
    SLOT.pack_into(slot, 0, 0.0, 0.0, 0, 50, 12)
    runner.sample()
    SLOT.pack_into(slot, 0, 0.0, 0.0, 0, 3, 1)  # a new process: its counters from 0 again
    runner.sample()

    assert counted("pointsman_runner_requests", "slots") - before[0] == 53
    assert counted("pointsman_runner_model_calls", "slots") - before[1] == 13
    assert (runner.served, runner.calls) == (3, 1)
