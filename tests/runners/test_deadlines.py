"""Deadlines on one timer; a runner call's time limit on a real Unix socket whose runner
reads calls and never answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from pointsman.runners import wire
from pointsman.runners.client import RunnerFault, RunnerLink
from pointsman.runners.deadlines import Deadlines, of_running_loop
from pointsman.types import Frame, Outputs

pytestmark = pytest.mark.anyio
FRAME = Frame({"x": np.array([1.0])}, 1)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}  # the server's loop: its timers, its clock


@pytest.fixture
async def silent(tmp_path: Path) -> AsyncIterator[tuple[RunnerLink, list[bytes]]]:
    """A link to a 'runner' that keeps every message it gets and answers none."""
    got: list[bytes] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 16):
            got.append(chunk)
        writer.close()

    path = tmp_path / "silent.sock"
    server = await asyncio.start_unix_server(hold, str(path))
    _, link = await asyncio.get_running_loop().create_unix_connection(RunnerLink, str(path))
    yield link, got
    assert link.transport is not None
    link.transport.close()
    server.close()
    await server.wait_closed()


async def timed(link: RunnerLink, timeout_s: float) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(RunnerFault) as caught:
        await link.call(FRAME, timeout_s)
    return caught.value.code, time.monotonic() - started


async def test_each_call_fails_at_its_own_deadline_the_shorter_one_set_last(
    silent: tuple[RunnerLink, list[bytes]],
) -> None:
    link, got = silent
    long, short = asyncio.create_task(timed(link, 0.6)), asyncio.create_task(timed(link, 0.05))
    async with asyncio.timeout(5):  # a deadline lost would hang the call for ever
        (short_code, short_s), (long_code, long_s) = await asyncio.gather(short, long)
    assert short_code == long_code == "timeout"
    assert 0.05 <= short_s < 0.4, short_s  # not held until the longer call's deadline
    assert 0.6 <= long_s < 1.5, long_s  # nor lost once the shorter one's timer went
    assert not link.pending and not link.deadlines
    # Each call went out, then its cancel: the runner may drop a call it has not started.
    await asyncio.sleep(0.05)
    kinds = [kind for kind, _, _ in wire.split(bytearray(b"".join(got)))]
    assert kinds.count(wire.PREDICT) == 2 and kinds.count(wire.CANCEL) == 2, kinds


async def test_a_call_answered_in_time_leaves_no_deadline_behind(
    silent: tuple[RunnerLink, list[bytes]],
) -> None:
    link, got = silent
    call = asyncio.create_task(link.call(FRAME, 5.0))
    await asyncio.sleep(0.02)
    [request_id] = link.pending
    answer = wire.encode_outputs(Outputs(predictions=[1]))
    link.data_received(wire.message(wire.RESULT, request_id, answer))
    assert (await call).predictions == [1]
    assert not link.pending and not link.deadlines
    await asyncio.sleep(0.05)
    kinds = [kind for kind, _, _ in wire.split(bytearray(b"".join(got)))]
    assert kinds == [wire.PREDICT], kinds  # answered: no cancel follows


async def test_deadlines_expire_in_time_once_each_and_not_when_discarded() -> None:
    deadlines = of_running_loop()
    assert of_running_loop() is deadlines
    loop, fired = deadlines.loop, []
    start = loop.time()

    def note(name: str) -> None:
        fired.append((name, loop.time() - start))

    def broken() -> None:
        raise RuntimeError("an expiry that fails")

    deadlines.add("late", start + 0.25, lambda: note("late"))
    deadlines.add("broken", start + 0.05, broken)  # earlier than the timer set: set anew
    deadlines.add("early", start + 0.05, lambda: note("early"))
    deadlines.add("gone", start + 0.1, lambda: note("gone"))
    deadlines.discard("gone")
    await asyncio.sleep(0.4)
    assert [name for name, _ in fired] == ["early", "late"], fired
    assert 0.05 <= fired[0][1] < 0.2 and 0.25 <= fired[1][1] < 0.4, fired
    assert not deadlines


async def test_each_loop_has_its_own_deadlines() -> None:
    mine = of_running_loop()
    theirs = await asyncio.to_thread(lambda: asyncio.run(_of_a_new_loop()))
    assert isinstance(theirs, Deadlines) and theirs is not mine


async def _of_a_new_loop() -> Deadlines:
    return of_running_loop()
