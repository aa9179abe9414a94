"""One function run in a process of its own under a runner's limits (register's smoke test).

The child sends back JSON only: what it ran may have been written by anyone, and a pickle
from it would run code in the parent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import orjson

from pointsman.errors import InvalidArtifact, PointsmanError, UnsafeArtifact
from pointsman.runners import limits
from pointsman.runners.spec import RunnerSpec, format_bytes
from pointsman.runners.supervisor import runner_context

_KNOWN = {"invalid_artifact": InvalidArtifact, "unsafe_artifact": UnsafeArtifact}


def run_limited(
    work: Callable[..., Any], args: tuple[Any, ...], spec: RunnerSpec, timeout_s: float
) -> Any:
    """`work(*args)` in a child under `spec`'s limits; its JSON-able result, or its error."""
    context = runner_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(work, args, spec, os.getcwd(), send), name="pointsman-check"
    )
    process.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            process.kill()
            raise InvalidArtifact(
                f"The model did not load and answer its training sample within {timeout_s:g} s "
                "(the time limit of its runners, for loading); it was stopped."
            )
        try:
            reply = orjson.loads(receive.recv_bytes())
        except EOFError:
            reply = None
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        receive.close()
    if reply is None:
        raise InvalidArtifact(_died(process.exitcode, spec))
    if "error" in reply:
        raise _KNOWN.get(reply["code"], InvalidArtifact)(reply["error"])
    return reply["ok"]


def _child(
    work: Callable[..., Any], args: tuple[Any, ...], spec: RunnerSpec, cwd: str, send: Connection
) -> None:
    # Forked from the forkserver: its folder, not the caller's, unless told.
    os.chdir(cwd)
    limits.apply_in_child(spec, None, 0)
    try:
        result: dict[str, Any] = {"ok": work(*args)}
    except PointsmanError as exc:
        result = {"error": exc.message, "code": exc.code}
    except BaseException as exc:
        hit = limits.limit_hit(exc, spec)
        words = f"while checking it {hit[1]}" if hit else f"{type(exc).__name__}: {exc}"
        result = {"error": f"The model failed its check: {words}.", "code": "invalid_artifact"}
    send.send_bytes(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY))
    send.close()
    os._exit(0)


def _died(code: int | None, spec: RunnerSpec) -> str:
    memory = "no limit" if spec.memory_bytes is None else format_bytes(spec.memory_bytes)
    return (
        f"The model's check process died (exit {code}) while loading it or answering its "
        f"training sample: a crash, or past its memory limit ({memory})."
    )
