"""A runner process: loads one version once, then answers "predict this frame" on a socket.

It binds its socket only once the version is loaded and has answered its input example, so
a runner that accepts connections is warm. One thread reads requests and runs the model:
what arrived while the model was busy is answered by one batched call next. What the
supervisor needs to watch (busy since, CPU at the start of the call, queue length, requests
and model calls) is in a small shared slot.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import logging
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

import numpy as np
import orjson

from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.loading import load_resolved
from pointsman.registry.versions import VersionRecord
from pointsman.runners import batching, handshake, limits, wire
from pointsman.runners.remote import split_address
from pointsman.runners.spec import RunnerSpec
from pointsman.runtimes import Runtime
from pointsman.types import Frame, Outputs

log = logging.getLogger("pointsman.runner")

# busy since (monotonic s, 0 = idle), process CPU s at that moment, queued requests,
# requests answered, model calls made (fewer than requests when calls were batched)
SLOT = struct.Struct("<ddIQQ")
HANG_UP_S = 2.0  # how long a drained runner waits for its callers to hang up
SEND_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RunnerArgs:
    """Everything a runner process needs: it opens no store and reads no settings."""

    name: str
    version: VersionRecord
    artifacts: ArtifactStore  # pickled: the folder, or the bucket and its local cache
    spec: RunnerSpec
    socket_path: Path
    slot_path: Path
    status_path: Path
    scratch: Path
    cgroup: Path | None
    index: int
    listen: str = ""  # host:port: listen on TCP (`pointsman runner serve`), not socket_path
    secret: bytes | None = None  # what TCP callers must prove they hold (runners/handshake.py)


def main(args: RunnerArgs) -> None:
    """The runner process's entry point (run in a child forked from the forkserver)."""
    _die_with_parent()
    limits.apply_in_child(args.spec, args.cgroup, args.index)
    args.scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(args.scratch)
    os.environ["TMPDIR"] = str(args.scratch)
    try:
        runtime, which = load_resolved(args.artifacts, args.version, args.spec.runtime)
    except BaseException as exc:
        _write_status(args.status_path, {"state": "failed", "error": _reason(exc, args.spec)})
        sys.stderr.flush()
        os._exit(limits.EXIT_LOAD)
    gc.freeze()  # the loaded model lives as long as the runner: no full collection walks it
    RunnerServer(args, runtime, which).serve()
    os._exit(0)


@dataclass
class Job:
    connection: Connection
    request_id: int
    frame: Frame
    flagged: bool = False  # its rows carry validation findings: suspect when a batch fails


class RunnerServer:
    """One thread: read what the callers sent, run it as one model call, answer, repeat.

    Calls that arrive while the model runs wait in the sockets' buffers; the next read takes
    them all, and those of the same columns become one batch (up to `max_batch_rows`). An
    idle runner answers a lone call at once: no thread hand-off, no waiting."""

    def __init__(self, args: RunnerArgs, runtime: Runtime, which: str = "original") -> None:
        self.args = args
        self.spec = args.spec
        self.runtime = runtime
        self.which = which  # original | compiled: told to callers with every answer
        self.jobs: collections.deque[Job] = collections.deque()
        self.draining = False
        self.served = 0
        self.calls = 0
        fd = os.open(args.slot_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, SLOT.size)  # all zeros: idle
        self.slot = mmap.mmap(fd, SLOT.size)
        os.close(fd)
        self.selector = selectors.DefaultSelector()
        self.connections: set[Connection] = set()
        self.listener: socket.socket | None = None

    def serve(self) -> None:
        listener = self.listener = self._listen()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, None)
        wake_r, wake_w = socket.socketpair()  # SIGTERM wakes the select below
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.selector.register(wake_r, selectors.EVENT_READ, wake_r)
        _write_status(
            self.args.status_path, {"state": "ready", "pid": os.getpid(), "runtime": self.which}
        )
        hang_up_by: float | None = None
        while True:
            wait: float | None = None  # idle: sleep until a caller writes (or SIGTERM)
            if self.jobs:
                wait = 0.0
            elif hang_up_by is not None:
                wait = max(0.0, hang_up_by - _now())
            self._read(wait)
            if self.draining and self.listener is not None:
                self._drain()
            if self.jobs:
                self._run(self._batch())
            elif self.draining:  # nothing left: go once every caller hung up, or after a while
                hang_up_by = hang_up_by or _now() + HANG_UP_S
                if not self.connections or _now() >= hang_up_by:
                    return

    def _listen(self) -> socket.socket:
        if self.args.listen:
            host, port = split_address(self.args.listen, "--listen")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            # A restarted runner binds the port its predecessor's connections still hold.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
        else:
            path = self.args.socket_path
            path.unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
        listener.listen(64)
        return listener

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.draining = True

    def _read(self, timeout: float | None) -> None:
        """Accept callers and queue every complete request they sent (waits up to `timeout`)."""
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._accept()
            elif isinstance(key.data, Connection):
                key.data.receive()
            else:  # the wake-up socket
                with contextlib.suppress(OSError):
                    key.data.recv(4096)

    def _accept(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(BlockingIOError):
            while True:
                sock, _ = self.listener.accept()
                connection = Connection(self, sock)
                self.connections.add(connection)
                self.selector.register(sock, selectors.EVENT_READ, connection)
                if self.args.listen:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connection.challenge(self.args.secret)

    def _drain(self) -> None:
        """Take no new caller or request, answer the queued ones, then exit.

        Callers are told at once (DRAIN), so they send new calls elsewhere; one already on
        the wire gets a "draining" error, never a closed connection."""
        assert self.listener is not None
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = None
        for connection in list(self.connections):
            connection.send(wire.message(wire.DRAIN, 0))

    def submit(
        self, connection: Connection, request_id: int, payload: bytes, flagged: bool = False
    ) -> None:
        if self.draining:
            connection.error(request_id, "draining", "", "the runner is stopping")
            return
        if len(self.jobs) >= self.spec.queue:
            connection.error(request_id, "queue_full", "", f"{self.spec.queue} waiting")
            return
        self.jobs.append(Job(connection, request_id, wire.decode_frame(payload), flagged))

    def cancel(self, connection: Connection, request_id: int) -> None:
        """The caller gave up on a call: drop it if it has not run yet."""
        for job in self.jobs:
            if job.request_id == request_id and job.connection is connection:
                self.jobs.remove(job)
                return

    def _batch(self) -> list[Job]:
        batch = [self.jobs.popleft()]
        rows = batching.fill(self.jobs, batch, self.spec.max_batch_rows)
        if self.spec.max_wait_ms and len(batch) > 1:  # calls arrive together: let it fill
            deadline = _now() + self.spec.max_wait_ms / 1000
            while rows < self.spec.max_batch_rows and not self.draining:
                left = deadline - _now()
                if left <= 0:
                    break
                self._read(left)
                rows = batching.fill(self.jobs, batch, self.spec.max_batch_rows)
        self._note(queued=len(self.jobs))
        return batch

    def _run(self, batch: list[Job]) -> None:
        """One model call for the batch; if it fails, one call per request, so that a bad
        request fails alone (the calls without findings first, together, as `_retry` says)."""
        try:
            outputs = self._call(batching.merge([job.frame for job in batch]))
            parts = batching.split(outputs, [job.frame.n_rows for job in batch])
        except BaseException as exc:
            if len(batch) == 1 or limits.limit_hit(exc, self.spec) is not None:
                self._failed(batch, exc)
                return
            parts = None
        if parts is None:  # outside the except: a retry's failure is not chained to this one
            self._retry(batch)
            return
        self.served += len(batch)
        self._note()
        for job, part in zip(batch, parts, strict=True):
            job.connection.send(
                wire.message(wire.RESULT, job.request_id, wire.encode_outputs(part, self.which))
            )

    def _retry(self, batch: list[Job]) -> None:
        """A failed batch again: the calls without validation findings as one batch (most
        likely fine: one call, not one each), then each flagged call alone."""
        clean = [job for job in batch if not job.flagged]
        if clean and len(clean) < len(batch):
            self._run(clean)
            batch = [job for job in batch if job.flagged]
        for job in batch:
            self._run([job])

    def _call(self, frame: Frame) -> Outputs:
        """The model on `frame`, watched by the supervisor (busy since, CPU at the start)."""
        self._note(busy_since=time.monotonic(), cpu=time.process_time())
        try:
            return self.runtime.predict(frame)
        finally:
            self.calls += 1
            self._note(busy_since=0.0)

    def _failed(self, batch: list[Job], exc: BaseException) -> None:
        hit = limits.limit_hit(exc, self.spec)
        if hit is None:
            if all(job.flagged for job in batch):  # its findings blame the input: one line
                log.warning("model raised %s on a call with validation findings: %s",
                            type(exc).__name__, str(exc)[:200])  # fmt: skip
            else:
                log.error(
                    "model failed on a request:\n%s", "".join(traceback.format_exception(exc))
                )
            self.served += len(batch)
            code = "model_error"
            # A flagged call's findings already blame the input: only a clean one is re-run.
            if len(batch) == 1 and not batch[0].flagged and self._overflows(batch[0].frame):
                code = "non_finite"  # the input's doing: the front answers 422, not 500
            for job in batch:
                job.connection.error(job.request_id, code, type(exc).__name__, str(exc))
            return
        # A limit was hit: tell every caller of the batch, then stop (the supervisor starts
        # a fresh runner).
        code, words = hit
        payload = wire.encode_error(code, type(exc).__name__, words)
        for job in batch:
            job.connection.send(wire.message(wire.ERROR, job.request_id, payload))
        os._exit(limits.EXIT_MEMORY if code == "memory" else limits.EXIT_DISK)

    def _overflows(self, frame: Frame) -> bool:
        """Whether the model computes infinity or NaN from this finite input: it runs once
        more with numpy's floating-point errors raised. Only after it failed on the input."""
        for column in frame.columns.values():
            if column.dtype.kind == "f" and not np.isfinite(column).all():
                return False  # infinity or null sent: validation's business, not ours
        try:
            with np.errstate(over="raise", invalid="raise"):
                self._call(frame)
        except FloatingPointError:
            return True
        except Exception:
            return False
        return False

    def forget(self, connection: Connection) -> None:
        """A caller hung up: its calls not yet run are dropped, nobody waits for them."""
        self.connections.discard(connection)
        if any(job.connection is connection for job in self.jobs):
            self.jobs = collections.deque(j for j in self.jobs if j.connection is not connection)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        connection.sock.close()

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
            self.calls,
        )


class Connection:
    """One HTTP worker's connection: many requests in flight, answered as they finish."""

    def __init__(self, server: RunnerServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.buffer = bytearray()
        self.nonce: bytes | None = None  # over TCP: sent, and not yet answered with the proof
        self.secret = b""
        # Non-blocking: reads happen only when select says so, and an answer almost always
        # fits the socket's buffer at once. A socket with a timeout would poll before every
        # recv and send: two system calls a request. `send` waits (at most SEND_TIMEOUT_S) only
        # when the buffer is full: a caller that stopped reading is then dropped.
        sock.setblocking(False)

    def challenge(self, secret: bytes | None) -> None:
        """Over TCP: nothing is read as a call until the caller proved the secret."""
        if secret is None:  # `pointsman runner serve` refuses to start without one
            self.server.forget(self)
            return
        self.nonce, hello = handshake.greeting()
        self.secret = secret
        self.send(hello)

    def _check_proof(self) -> bool:
        """Whether the caller proved the secret (False: not all of it arrived yet, or wrong,
        and then it is gone)."""
        assert self.nonce is not None
        if len(self.buffer) < handshake.ANSWER:
            return False
        reply = handshake.check_answer(
            self.secret, self.nonce, bytes(self.buffer[: handshake.ANSWER])
        )
        if reply is None:
            log.warning("refused a caller that does not hold the runner secret")
            self.server.forget(self)
            return False
        del self.buffer[: handshake.ANSWER]
        self.nonce = None
        self.send(reply)
        return True

    def receive(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:  # select woke us for nothing
            return
        except OSError:
            data = b""
        if not data:
            self.server.forget(self)
            return
        self.buffer += data
        if self.nonce is not None and not self._check_proof():
            return
        try:
            for kind, request_id, payload in wire.split(self.buffer):
                if kind in (wire.PREDICT, wire.PREDICT_FLAGGED):
                    self.server.submit(self, request_id, payload, kind == wire.PREDICT_FLAGGED)
                elif kind == wire.CANCEL:
                    self.server.cancel(self, request_id)
        except wire.WireError as exc:
            log.warning("closing a connection that broke the protocol: %s", exc)
            self.server.forget(self)

    def error(self, request_id: int, code: str, kind: str, message: str) -> None:
        self.send(wire.message(wire.ERROR, request_id, wire.encode_error(code, kind, message)))

    def send(self, data: bytes) -> None:
        if self not in self.server.connections:
            return  # the caller hung up: nobody is waiting for this answer
        try:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):  # the caller's buffer is full: wait for it, for a while
                self.sock.settimeout(SEND_TIMEOUT_S)
                try:
                    self.sock.sendall(memoryview(data)[sent:])
                finally:
                    self.sock.setblocking(False)
        except OSError as exc:
            log.warning("dropping a caller that does not read its answers: %s", exc)
            self.server.forget(self)


def _now() -> float:
    return time.monotonic()


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
