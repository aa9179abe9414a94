"""Adaptive batching in the runner: calls queued while the model is busy become one model
call, each caller gets exactly its own rows back, and a poisoned request fails alone."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pointsman.errors import InputNotComputable
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.registry.loading import load_and_warm
from pointsman.runners import batching, wire
from pointsman.runners.client import RunnerFault
from pointsman.runners.directory import runner_name
from pointsman.runners.process import SLOT
from pointsman.types import Frame
from pointsman.validation.signature import build_frame, records_to_columns
from tests.api.conftest import register_churn
from tests.serving import Serving, serving

pytestmark = pytest.mark.anyio

# Twice x for each row; 30 ms per call whatever its size, so that calls pile up behind it.
# A frame holding x = 13 raises, as a model does on input it cannot handle.
DOUBLER = """
import time


class Doubler:
    def predict(self, frame):
        time.sleep(0.03)
        if (frame["x"] == 13).any():
            raise ValueError("13 is unlucky")
        return (frame["x"] * 2).tolist()
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Job:
    frame: Frame


def frame(**columns: list[float]) -> Frame:
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    return Frame(arrays, len(next(iter(arrays.values()))))


def test_fill_merges_only_frames_of_the_same_columns_within_the_row_limit() -> None:
    a = Job(frame(x=[1.0, 2.0]))
    queue = collections.deque(
        [
            Job(frame(x=[3.0])),
            Job(frame(y=[4.0])),  # other columns: never merged
            Job(frame(x=[5.0, 6.0, 7.0])),  # would pass the limit
            Job(frame(x=[8.0])),
        ]
    )
    batch = [a]
    rows = batching.fill(queue, batch, max_rows=4)
    assert rows == 4
    assert [j.frame.columns["x"].tolist() for j in batch] == [[1.0, 2.0], [3.0], [8.0]]
    # What stayed keeps its order.
    assert [list(j.frame.columns) for j in queue] == [["y"], ["x"]]
    assert queue[1].frame.n_rows == 3


def test_split_refuses_outputs_of_the_wrong_length() -> None:
    from pointsman.types import Outputs

    with pytest.raises(ValueError, match="answered 2 rows for a batch of 3"):
        batching.split(Outputs([1, 2]), [1, 2])


def test_merged_and_unmerged_calls_give_identical_answers(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    number = register_churn(project, churn_files)[0]
    version = project.registry.get_version("churn", number)
    runtime = load_and_warm(project.registry.artifacts, version)
    data = pd.read_csv(churn_files[0][1]).drop(columns=["churned"]).head(40)
    records = data.to_dict("records")
    frames = []
    for start, size in ((0, 1), (1, 7), (8, 1), (9, 16), (25, 15)):
        columns, n, problems = records_to_columns(records[start : start + size], version.signature)
        frames.append(build_frame(version.signature, columns, n, problems))
    parts = batching.split(runtime.predict(batching.merge(frames)), [f.n_rows for f in frames])
    for one, part in zip(frames, parts, strict=True):
        alone = runtime.predict(one)
        assert part.predictions == alone.predictions
        assert part.classes == alone.classes
        assert part.probabilities is not None and alone.probabilities is not None
        np.testing.assert_allclose(part.probabilities, alone.probabilities, rtol=0, atol=1e-12)


def register_doubler(project: Project, folder: Path) -> int:
    source, data = folder / "doubler.py", folder / "doubler.csv"
    source.write_text(DOUBLER)
    rng = np.random.default_rng(0)
    x = rng.random(40)
    pd.DataFrame({"x": x, "y": 2 * x}).to_csv(data, index=False)
    record, _ = project.registry.register(
        Submission(model="doubler", path=source, entrypoint="Doubler", training_data=data,
                   target="y", user="t")
    )  # fmt: skip
    return record.number


def x_frame(served: Serving, *xs: float) -> Frame:
    signature = served.catalog.target("doubler").signature
    columns, n, problems = records_to_columns([{"x": x} for x in xs], signature)
    return build_frame(signature, columns, n, problems)


def counters(served: Serving, number: int) -> tuple[int, int]:
    """(requests answered, model calls) from the runner's slot."""
    path = served.catalog.run_dir.slot(runner_name("doubler", number, 0))
    *_, answered, calls = SLOT.unpack_from(path.read_bytes(), 0)
    return answered, calls


async def test_concurrent_calls_share_model_calls_and_keep_their_own_rows(
    project: Project, tmp_path: Path
) -> None:
    number = register_doubler(project, tmp_path)
    project.routes.deploy("doubler", number, "t")
    async with serving(project) as served:
        before = counters(served, number)
        # A lone call on an idle runner goes straight to the model: one request, one call.
        lone = await served.predict("doubler", x_frame(served, 0.25))
        assert lone.outputs.predictions == [0.5]
        after = counters(served, number)
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)

        sizes = [1 + i % 3 for i in range(24)]
        frames = [x_frame(served, *[100.0 * i + j for j in range(n)]) for i, n in enumerate(sizes)]
        started = time.monotonic()
        answers = await asyncio.gather(*(served.predict("doubler", f) for f in frames))
        took = time.monotonic() - started
        for i, (n, answer) in enumerate(zip(sizes, answers, strict=True)):
            assert answer.outputs.predictions == [2 * (100.0 * i + j) for j in range(n)]
        done = counters(served, number)
        requests, calls = done[0] - after[0], done[1] - after[1]
        assert requests == 24
        assert calls < 24 / 3, (calls, took)  # 24 calls of 30 ms one by one would take 0.72 s
        assert took < 0.5, took


async def test_a_poisoned_request_fails_alone(project: Project, tmp_path: Path) -> None:
    number = register_doubler(project, tmp_path)
    project.routes.deploy("doubler", number, "t")
    async with serving(project) as served:
        blocker = asyncio.create_task(served.predict("doubler", x_frame(served, 1.0)))
        await asyncio.sleep(0.01)  # the model is busy: what follows queues into one batch
        xs = [2.0, 3.0, 13.0, 4.0, 5.0]
        results = await asyncio.gather(
            *(served.predict("doubler", x_frame(served, x)) for x in xs),
            return_exceptions=True,
        )
        assert (await blocker).outputs.predictions == [2.0]
        for x, result in zip(xs, results, strict=True):
            if x == 13.0:  # outside the training range (0 to 1): the caller's input, a 422
                assert isinstance(result, InputNotComputable), result
                assert "raised ValueError" in str(result)
            else:
                assert not isinstance(result, BaseException), (x, result)
                assert result.outputs.predictions == [2 * x]
        answered, calls = counters(served, number)
        # the blocker, the batch of 5 that failed, then its 5 requests one by one (all flagged,
        # out of the training range: the poisoned one is not run again to see if it overflows)
        assert (answered, calls) == (6, 1 + 1 + 5)


async def test_a_failed_batch_runs_its_calls_without_findings_again_together(
    project: Project, tmp_path: Path
) -> None:
    number = register_doubler(project, tmp_path)
    project.routes.deploy("doubler", number, "t")
    async with serving(project) as served:
        pool = served.catalog.pools["doubler", number]
        blocker = asyncio.create_task(pool.predict(x_frame(served, 0.1), 5.0))
        await asyncio.sleep(0.01)  # the model is busy: what follows queues into one batch
        xs = [0.2, 0.3, 13.0, 0.4]
        results = await asyncio.gather(
            *(pool.predict(x_frame(served, x), 5.0, flagged=x == 13.0) for x in xs),
            return_exceptions=True,
        )
        assert (await blocker).predictions == [0.2]
        for x, result in zip(xs, results, strict=True):
            if x == 13.0:
                assert isinstance(result, RunnerFault) and result.code == "model_error", result
            else:
                assert not isinstance(result, BaseException), (x, result)
                assert result.predictions == [2 * x]
        # the blocker, the batch of 4 that failed, the 3 clean calls as one, the flagged one
        assert counters(served, number)[1] == 1 + 1 + 1 + 1


async def test_a_call_its_caller_gave_up_on_is_never_run(project: Project, tmp_path: Path) -> None:
    number = register_doubler(project, tmp_path)
    project.routes.deploy("doubler", number, "t")
    async with serving(project) as served:
        pool = served.catalog.pools["doubler", number]
        blocker = asyncio.create_task(pool.predict(x_frame(served, 1.0), 5.0))
        await asyncio.sleep(0.01)  # the model is busy with the blocker for 30 ms
        late = [pool.predict(x_frame(served, float(x)), 0.005) for x in range(5)]
        faults = await asyncio.gather(*late, return_exceptions=True)
        assert all(isinstance(f, RunnerFault) and f.code == "timeout" for f in faults), faults
        assert (await blocker).predictions == [2.0]
        await asyncio.sleep(0.1)  # time enough to run the five, had they stayed queued
        assert counters(served, number) == (1, 1)
        # The runner still answers.
        assert (await pool.predict(x_frame(served, 3.0), 5.0)).predictions == [6.0]


async def test_a_caller_that_stops_reading_is_dropped_and_the_others_served(
    project: Project, tmp_path: Path
) -> None:
    number = register_doubler(project, tmp_path)
    project.routes.deploy("doubler", number, "t")
    async with serving(project) as served:
        pool = served.catalog.pools["doubler", number]
        path = pool.addresses[0]
        assert isinstance(path, Path)
        # 40 calls of 4,000 rows: about 3 MB of answers, far past the socket's buffers.
        xs = np.random.default_rng(1).random(4000).tolist()
        payload = wire.encode_frame(x_frame(served, *xs))
        calls = b"".join(wire.message(wire.PREDICT, i, payload) for i in range(1, 41))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
            stuck.settimeout(30)
            stuck.connect(str(path))
            # The runner stops reading the calls when its answers fill the buffers.
            sending = asyncio.create_task(asyncio.to_thread(send_until_dropped, stuck, calls))
            # Served once the runner gave up on the caller that does not read (its calls
            # still queued are dropped with it).
            assert (await pool.predict(x_frame(served, 3.0), 30.0)).predictions == [6.0]
            await sending
            # The runner hung up on it: what it still holds, then the end (or a reset, as
            # calls it never read were left behind).
            answered = await asyncio.to_thread(read_until_closed, stuck)
        assert answered < 40


def send_until_dropped(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_until_closed(sock: socket.socket) -> int:
    """Answers read until the other side closed (a timeout raises)."""
    buffer, answered = bytearray(), 0
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            buffer += chunk
            answered += sum(1 for _ in wire.split(buffer))
    return answered
