"""The HTTP worker's side of the runners: one connection per runner, many calls in flight.

A `RunnerPool` holds the connections to one version's runners, sends each call to the
replica with the fewest calls in flight, and turns what comes back (or what does not) into
a `RunnerFault` that says which limit was hit. A connection that closes fails every call
waiting on it at once: a runner that dies never leaves a caller hanging.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from pointsman.runners import handshake, wire
from pointsman.runners.deadlines import Deadlines
from pointsman.runners.remote import split_address
from pointsman.types import Frame, Outputs

RETRY_CONNECT_S = 0.2  # a replica that refused a connection is tried again after this
RETRY_REFUSED_S = 5.0  # one that refused our proof (another secret): not every 0.2 s
CONNECT_TIMEOUT_S = 5.0
Address = Path | str  # a Unix socket, or host:port over TCP (then with the shared secret)
log = logging.getLogger("pointsman.runners")
_ids = itertools.count(1)


class RunnerFault(Exception):
    """A call a runner did not answer: why (code) and in words.

    code: model_error (the model raised), non_finite (it raised, and computes infinity or
    NaN from this finite input: the input's fault), memory, disk (a limit), crashed (the runner
    died), timeout (past its time limit), queue_full, not_ready, draining.
    """

    def __init__(self, code: str, message: str, kind: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.kind = kind  # the exception's type name, for model_error


class RunnerLink(asyncio.Protocol):
    """One connection to one runner, multiplexed by request id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: dict[int, asyncio.Future[Outputs]] = {}
        self.deadlines: Deadlines | None = None  # of the pending calls, on one timer
        self.buffer = bytearray()
        self.draining = False  # the runner said it is stopping: answers come, calls go elsewhere

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.draining

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        # Kept: asyncio.get_running_loop() costs a getpid() system call on Python 3.11.
        self.loop = asyncio.get_running_loop()
        self.deadlines = Deadlines(self.loop)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            for kind, request_id, payload in wire.split(self.buffer):
                if kind == wire.DRAIN:  # the runner is stopping: hang up once answered
                    self.draining = True
                    self.hang_up_if_idle()
                    continue
                future = self.pending.pop(request_id, None)
                if future is None or future.done():
                    continue  # the caller gave up (its deadline passed)
                if kind == wire.RESULT:
                    future.set_result(wire.decode_outputs(payload))
                elif kind == wire.ERROR:
                    error = wire.decode_error(payload)
                    future.set_exception(
                        RunnerFault(error["code"], error["message"], error["kind"])
                    )
        except wire.WireError as exc:
            self._fail_all(RunnerFault("crashed", f"the runner broke the protocol ({exc})"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail_all(RunnerFault("crashed", "the runner stopped while answering"))

    def hang_up_if_idle(self) -> None:
        if self.draining and not self.pending and self.transport is not None:
            self.transport.close()

    def _fail_all(self, fault: RunnerFault) -> None:
        pending, self.pending = self.pending, {}
        if self.deadlines is not None:
            self.deadlines.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(fault)

    async def call(self, frame: Frame, timeout_s: float, flagged: bool = False) -> Outputs:
        if self.transport is None or self.loop is None or self.deadlines is None:
            raise RunnerFault("crashed", "the connection to the runner is closed")
        request_id = next(_ids)
        future: asyncio.Future[Outputs] = self.loop.create_future()
        self.pending[request_id] = future
        kind = wire.PREDICT_FLAGGED if flagged else wire.PREDICT
        self.transport.write(wire.message(kind, request_id, wire.encode_frame(frame)))
        # The deadline fails the future itself: neither wait_for (on 3.11 it swallows a
        # cancellation that arrives as the answer does) nor asyncio.timeout (it looks up the
        # loop and the task on every call); a cancelled caller still cancels the future.
        at = self.loop.time() + timeout_s
        self.deadlines.add(request_id, at, functools.partial(_time_out, future, timeout_s))
        try:
            return await future
        finally:
            self.deadlines.discard(request_id)
            # Still pending: no answer came (a timeout, or our caller went away), so the
            # runner may drop the call if it has not started it.
            if self.pending.pop(request_id, None) is not None and self.transport is not None:
                self.transport.write(wire.message(wire.CANCEL, request_id))
            self.hang_up_if_idle()


def _time_out(future: asyncio.Future[Outputs], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(RunnerFault("timeout", f"no answer within {timeout_s:g} s"))


class Replica:
    """One runner (its socket, or host:port) and this process's connection to it (if any)."""

    def __init__(self, address: Address, secret: bytes | None = None) -> None:
        self.address = address
        self.secret = secret
        self.link: RunnerLink | None = None
        self.next_try = 0.0
        self.error = ""  # why the last TCP connection failed, for readiness reports

    @property
    def is_connected(self) -> bool:
        return self.link is not None and self.link.is_open

    @property
    def in_flight(self) -> int:
        return len(self.link.pending) if self.link is not None else 0

    @property
    def wants_link(self) -> bool:
        """Not connected, and not tried a moment ago."""
        return not self.is_connected and time.monotonic() >= self.next_try

    async def connect(self, now: bool = False) -> None:
        """Try once (unless tried a moment ago, and not `now`); a runner not listening yet is
        not an error."""
        if self.is_connected or (time.monotonic() < self.next_try and not now):
            return
        self.next_try = time.monotonic() + RETRY_CONNECT_S
        loop = asyncio.get_running_loop()
        if isinstance(self.address, Path):  # the local path: nothing added to it
            if not self.address.exists():  # not started (the surge runner's, mostly): no call
                return
            try:
                _, link = await loop.create_unix_connection(RunnerLink, str(self.address))
            except OSError:
                return
            self.link = link
            return
        try:
            self.link = await connect_tcp(self.address, self.secret)
            self.error = ""
        except OSError as exc:
            self.error = f"cannot reach the runner at {self.address}: {exc}"
        except handshake.HandshakeError as exc:
            self.next_try = time.monotonic() + RETRY_REFUSED_S
            if self.error != str(exc):
                log.warning("runner at %s refused: %s", self.address, exc)
            self.error = f"the runner at {self.address} refused the connection: {exc}"


async def connect_tcp(address: str, secret: bytes | None) -> RunnerLink:
    """A link to the runner at host:port, once both sides proved the secret."""
    if secret is None:
        raise handshake.HandshakeError("no runner_secret is set")
    host, port = split_address(address)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"{host} does not resolve")
        family, kind, proto, _, where = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, where)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames, now
            await handshake.prove(sock, secret)
            _, link = await loop.create_connection(RunnerLink, sock=sock)
        except BaseException:
            sock.close()
            raise
    return link


class RunnerPool:
    """The runners of one version, as seen from one HTTP worker."""

    def __init__(self, addresses: Sequence[Address], secret: bytes | None = None) -> None:
        self.secret = secret
        self.replicas = [Replica(a, secret) for a in addresses]

    @property
    def addresses(self) -> list[Address]:
        return [r.address for r in self.replicas]

    def resize(self, addresses: Sequence[Address]) -> None:
        """Another replica count: links kept where the address stays; a dropped one's calls
        in flight still get their answers (its runner drains before it stops)."""
        kept = {r.address: r for r in self.replicas}
        self.replicas = [kept.pop(a) if a in kept else Replica(a, self.secret) for a in addresses]
        for gone in kept.values():
            if gone.link is not None:
                gone.link.draining = True
                gone.link.hang_up_if_idle()

    @property
    def is_ready(self) -> bool:
        return any(r.is_connected for r in self.replicas)

    @property
    def wants_links(self) -> bool:
        """A replica not linked and due another try: a runner up after the first, one
        restarted after a crash, the surge runner of a rollout."""
        return any(r.wants_link for r in self.replicas)

    def state(self) -> dict[str, Any]:
        """The runners as this process sees them, shaped like a supervisor's published state
        (remote runners have no supervisor here to publish it)."""
        runners = [
            {"index": i, "address": str(r.address), "error": r.error,
             "state": "ready" if r.is_connected else "starting"}
            for i, r in enumerate(self.replicas)
        ]  # fmt: skip
        return {"runners": runners}

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    async def connect(self, now: bool = False) -> None:
        """Connect to every replica that is listening and not connected yet."""
        await asyncio.gather(*(r.connect(now) for r in self.replicas if not r.is_connected))

    async def predict(self, frame: Frame, timeout_s: float, flagged: bool = False) -> Outputs:
        """The runners' answer; RunnerFault when none gives one. `flagged`: its rows carry
        validation findings (the suspects when its batch fails)."""
        for _ in range(len(self.replicas) + 1):
            connected = [r for r in self.replicas if r.is_connected]
            if not connected:
                await self.connect(now=True)  # a runner may have come back a moment ago
                connected = [r for r in self.replicas if r.is_connected]
                if not connected:
                    raise RunnerFault("not_ready", "no runner is up yet (loading, or restarting)")
            link = min(connected, key=lambda r: r.in_flight).link
            assert link is not None
            try:
                return await link.call(frame, timeout_s, flagged)
            except RunnerFault as fault:
                if fault.code != "draining":
                    raise
                link.draining = True  # stopping (new limits, or unrouted): ask another one
        raise RunnerFault("not_ready", "every runner of the version is stopping")

    def close(self) -> None:
        for replica in self.replicas:
            link = replica.link
            if link is not None and link.transport is not None:
                if link.loop is not None and link.loop.is_closed():
                    continue  # closing needs the loop; the socket goes with the transport
                link.transport.close()


def call_once(path: Path, frame: Frame, timeout_s: float) -> Outputs:
    """A blocking call on one runner, for commands run from a terminal (no event loop)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            sock.sendall(wire.message(wire.PREDICT, 1, wire.encode_frame(frame)))
            buffer = bytearray()
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise RunnerFault("crashed", "the runner stopped while answering")
                buffer += chunk
                for kind, _, payload in wire.split(buffer):
                    if kind == wire.DRAIN:
                        continue  # the answer (or a "draining" error) still comes
                    if kind == wire.RESULT:
                        return wire.decode_outputs(payload)
                    error = wire.decode_error(payload)
                    raise RunnerFault(error["code"], error["message"], error["kind"])
        except TimeoutError:
            raise RunnerFault("timeout", f"no answer within {timeout_s:g} s") from None
        except (ConnectionError, FileNotFoundError) as exc:
            raise RunnerFault("not_ready", f"cannot reach the runner: {exc}") from None
