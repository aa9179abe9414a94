"""A runner process: loads one version once, then answers "predict this frame" on a socket.

It binds its socket only once the version is loaded and has answered its input example, so
a runner that accepts connections is warm. Requests are read on the event loop while the
model runs in its own thread; a bounded queue sits between them. What the supervisor needs
to watch (busy since, CPU at the start of the call, queue length) is in a small shared slot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import logging
import mmap
import os
import signal
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import cast

import orjson

from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.loading import load_and_warm
from pointsman.registry.versions import VersionRecord
from pointsman.runners import limits, wire
from pointsman.runners.spec import RunnerSpec
from pointsman.runtimes import Runtime
from pointsman.types import Frame

log = logging.getLogger("pointsman.runner")

# busy since (monotonic s, 0 = idle), process CPU s at that moment, queued requests, served
SLOT = struct.Struct("<ddII")
HANG_UP_S = 2.0  # how long a drained runner waits for its callers to hang up
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RunnerArgs:
    """Everything a runner process needs: it opens no store and reads no settings."""

    name: str
    version: VersionRecord
    artifacts: Path
    spec: RunnerSpec
    socket_path: Path
    slot_path: Path
    status_path: Path
    scratch: Path
    cgroup: Path | None
    index: int


def main(args: RunnerArgs) -> None:
    """The runner process's entry point (run in a child forked from the forkserver)."""
    _die_with_parent()
    limits.apply_in_child(args.spec, args.cgroup, args.index)
    args.scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(args.scratch)
    os.environ["TMPDIR"] = str(args.scratch)
    try:
        runtime = load_and_warm(ArtifactStore(args.artifacts), args.version)
    except BaseException as exc:
        _write_status(args.status_path, {"state": "failed", "error": _reason(exc, args.spec)})
        sys.stderr.flush()
        os._exit(limits.EXIT_LOAD)
    gc.freeze()  # the loaded model lives as long as the runner: no full collection walks it
    server = RunnerServer(args, runtime)
    try:
        import uvloop

        uvloop.run(server.serve())
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(server.serve())
    os._exit(0)


@dataclass
class Job:
    connection: RunnerConnection
    request_id: int
    frame: Frame


class RunnerServer:
    """The socket side (event loop thread) and the model side (one thread) of a runner."""

    def __init__(self, args: RunnerArgs, runtime: Runtime) -> None:
        self.args = args
        self.spec = args.spec
        self.runtime = runtime
        self.jobs: collections.deque[Job] = collections.deque()
        self.ready = threading.Condition()
        self.draining = False
        self.served = 0
        fd = os.open(args.slot_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, SLOT.size)  # all zeros: idle
        self.slot = mmap.mmap(fd, SLOT.size)
        os.close(fd)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: asyncio.AbstractServer | None = None
        self.connections: set[RunnerConnection] = set()
        self.done = asyncio.Event()

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.args.socket_path.exists():
            self.args.socket_path.unlink()
        server = self.listener = await self.loop.create_unix_server(
            lambda: RunnerConnection(self), str(self.args.socket_path)
        )
        threading.Thread(target=self._model_loop, name="pointsman-model", daemon=True).start()
        self.loop.add_signal_handler(signal.SIGTERM, self._drain)
        _write_status(self.args.status_path, {"state": "ready", "pid": os.getpid()})
        await self.done.wait()
        server.close()

    def _drain(self) -> None:
        """SIGTERM: take no new connection or request, answer the queued ones, then exit.

        Callers are told at once (DRAIN), so they send new calls elsewhere; one already on
        the wire gets a "draining" error, never a closed connection."""
        self.draining = True
        if self.listener is not None:
            self.listener.close()
        for connection in self.connections:
            connection.write(wire.message(wire.DRAIN, 0))
        with self.ready:
            self.ready.notify()

    async def _hang_up(self) -> None:
        """Queue empty while draining: exit once every caller hung up (or after a while)."""
        deadline = time.monotonic() + HANG_UP_S
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.done.set()

    def submit(self, connection: RunnerConnection, request_id: int, payload: bytes) -> None:
        if self.draining:
            connection.error(request_id, "draining", "", "the runner is stopping")
            return
        if len(self.jobs) >= self.spec.queue:
            connection.error(request_id, "queue_full", "", f"{self.spec.queue} waiting")
            return
        frame = wire.decode_frame(payload)
        with self.ready:
            self.jobs.append(Job(connection, request_id, frame))
            self._note(queued=len(self.jobs))
            self.ready.notify()

    def _model_loop(self) -> None:
        while True:
            with self.ready:
                while not self.jobs and not self.draining:
                    self.ready.wait()
                if not self.jobs:  # draining and nothing left
                    assert self.loop is not None
                    asyncio.run_coroutine_threadsafe(self._hang_up(), self.loop)
                    return
                job = self.jobs.popleft()
                self._note(queued=len(self.jobs))
            self._run(job)

    def _run(self, job: Job) -> None:
        self._note(busy_since=time.monotonic(), cpu=time.process_time())
        try:
            outputs = self.runtime.predict(job.frame)
        except BaseException as exc:
            self._note(busy_since=0.0)
            self._failed(job, exc)
            return
        self._note(busy_since=0.0)
        self.served += 1
        job.connection.reply(job.request_id, wire.RESULT, wire.encode_outputs(outputs))

    def _failed(self, job: Job, exc: BaseException) -> None:
        hit = limits.limit_hit(exc, self.spec)
        if hit is None:
            log.error("model failed on a request:\n%s", "".join(traceback.format_exception(exc)))
            job.connection.error(job.request_id, "model_error", type(exc).__name__, str(exc))
            return
        code, words = hit
        exit_code = limits.EXIT_MEMORY if code == "memory" else limits.EXIT_DISK
        assert self.loop is not None
        payload = wire.encode_error(code, type(exc).__name__, words)
        self.loop.call_soon_threadsafe(job.connection.fatal, job.request_id, payload, exit_code)

    def _note(
        self,
        *,
        busy_since: float | None = None,
        cpu: float | None = None,
        queued: int | None = None,
    ) -> None:
        old = SLOT.unpack_from(self.slot, 0)
        SLOT.pack_into(
            self.slot,
            0,
            old[0] if busy_since is None else busy_since,
            old[1] if cpu is None else cpu,
            old[2] if queued is None else queued,
            self.served,
        )


class RunnerConnection(asyncio.Protocol):
    """One HTTP worker's connection: many requests in flight, answered as they finish."""

    def __init__(self, server: RunnerServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            for kind, request_id, payload in wire.split(self.buffer):
                if kind == wire.PREDICT:
                    self.server.submit(self, request_id, payload)
        except wire.WireError as exc:
            log.warning("closing a connection that broke the protocol: %s", exc)
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)

    def reply(self, request_id: int, kind: int, payload: bytes) -> None:
        """Called from the model thread: the write happens on the event loop."""
        loop = self.server.loop
        assert loop is not None
        loop.call_soon_threadsafe(self.write, wire.message(kind, request_id, payload))

    def error(self, request_id: int, code: str, kind: str, message: str) -> None:
        payload = wire.encode_error(code, kind, message)
        if threading.current_thread() is threading.main_thread():
            self.write(wire.message(wire.ERROR, request_id, payload))
        else:
            self.reply(request_id, wire.ERROR, payload)

    def fatal(self, request_id: int, payload: bytes, exit_code: int) -> None:
        """A limit was hit: tell the caller, then stop (the supervisor starts a fresh one)."""
        self.write(wire.message(wire.ERROR, request_id, payload))
        os._exit(exit_code)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


def _write_status(path: Path, status: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(status))
    tmp.replace(path)


def _reason(exc: BaseException, spec: RunnerSpec) -> str:
    hit = limits.limit_hit(exc, spec)
    if hit is not None:
        return f"while loading it {hit[1]}"
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"[:2000]


def _die_with_parent() -> None:
    """Linux: be killed when the forkserver (our parent) goes, i.e. when the server stops.

    The forkserver hands each child its "server alive" pipe, and exits only once every holder
    closed it: a runner keeping it would keep the forkserver, hence itself, alive after the
    server was killed. So the runner closes it first."""
    state = forkserver._forkserver
    alive = getattr(state, "_forkserver_alive_fd", None)
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)
        state._forkserver_alive_fd = None  # type: ignore[attr-defined]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop still kills us
        pass
