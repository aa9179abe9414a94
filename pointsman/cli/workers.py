"""uvicorn's HTTP workers, each accepting on a listening socket of its own (SO_REUSEPORT).

With one socket shared by every worker, the worker that wakes first accepts every
connection waiting: 16 keep-alive connections opened together landed 16/0 or 15/1 on two
workers in most trials, so one core served and the other idled for the connections' life.
With a socket per worker in one SO_REUSEPORT group the kernel spreads new connections over
the workers by their addresses. Linux only: elsewhere SO_REUSEPORT does not balance, and the
workers share one socket as uvicorn makes it.

uvicorn's supervisor (restarts, health checks, signals) is kept; only the socket its workers
listen on changes, through the Process class it makes them with.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

log = logging.getLogger("uvicorn.error")


def balanced() -> bool:
    """Whether this system spreads connections over a SO_REUSEPORT group."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def run_workers(config: uvicorn.Config) -> None:
    """Serve `config` with `config.workers` processes, each on its own socket of the port
    where the system balances them, else on one socket they share."""
    probe = config.bind_socket()  # fails as uvicorn does when the port is taken; logs the URL
    if not balanced():
        multiprocess.Multiprocess(config, sockets=[probe]).run()
        return
    config.port = probe.getsockname()[1]  # port 0: every worker joins the one chosen here
    probe.close()  # a socket without SO_REUSEPORT on the port would keep the workers out
    multiprocess.Process = OwnSocketProcess  # type: ignore[misc]
    multiprocess.Multiprocess(config, sockets=[]).run()


class OwnSocketProcess(multiprocess.Process):
    """A uvicorn worker that listens on a SO_REUSEPORT socket it binds itself."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        super().target([reuse_port_socket(self.config)])


def reuse_port_socket(config: uvicorn.Config) -> socket.socket:
    """A socket bound to the server's address in its SO_REUSEPORT group."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:  # another server took the port since the probe: do not retry
        log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    return sock
