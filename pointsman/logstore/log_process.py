"""The prediction log's process of `pointsman serve`: shipping, then the rollups.

The HTTP workers only append records and seal segments. One child process per server, with
its own store connection, ships every worker's sealed segments (logstore/shipping.py) and
rolls up what was shipped (logstore/roller.py), so neither costs a serving process CPU or
its GIL. `stop` asks it to ship what the stopped workers left, roll that up and end; a
child whose server died (its pipe closes) ends at once: what is spooled waits for the next
start, as it did when shipping died with the worker.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import multiprocessing
import multiprocessing.connection
import os
import signal

from pointsman.logstore.roller import Roller
from pointsman.logstore.shipping import Shipping
from pointsman.settings import Settings
from pointsman.store.engine import connect

LoggingConfig = dict[str, object]

log = logging.getLogger("pointsman.logstore")

STOP = "stop"
NICE = 5  # as the runners
STOP_WAIT_S = 60.0  # for the last shipping round; past it what is left waits for the next start


class LogProcess:
    """Starts, and stops, the child that ships and rolls up the prediction log."""

    def __init__(self, settings: Settings, logging_config: LoggingConfig | None = None) -> None:
        self.settings = settings
        self.logging_config = logging_config  # the server's: the child logs as it does
        self._child: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    def start(self) -> None:
        # spawn: the server has threads, and the child needs none of its state.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve,
            args=(child, self.settings, self.logging_config),
            name="pointsman-log",
            daemon=True,
        )
        process.start()
        child.close()  # only the child holds its end: the server's death ends the child
        self._child, self._conn = process, parent
        log.info("the prediction log ships from process %s", process.pid)

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Once the workers are gone: the last round, then the end of the child."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        if child is None or conn is None:
            return
        with contextlib.suppress(OSError):  # it died: the next start ships what is left
            conn.send(STOP)
        child.join(wait_s)
        conn.close()
        if child.is_alive():
            log.warning("prediction log shipping still running after %g s: stopped; what is "
                        "left stays spooled until the next start", wait_s)  # fmt: skip
            child.kill()
            child.join()


def serve(
    conn: multiprocessing.connection.Connection,
    settings: Settings,
    logging_config: LoggingConfig | None,
) -> None:
    """The child: ship and roll up every interval until told to stop or the server dies."""
    # Ctrl-C and SIGTERM may reach the whole process group (a terminal, systemd): the server
    # stops its workers first and then tells this process, which must outlive them to ship
    # what they left. `stop` kills it if it overstays.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICE)  # shipping can wait a moment: the HTTP workers answer first
    if logging_config is not None:
        logging.config.dictConfig(logging_config)
    engine = connect(settings.resolved_database_url())
    shipping = Shipping(settings, engine, alone=True) if settings.log_predictions else None
    roller = Roller(engine, outage=shipping.outage if shipping is not None else None)
    if shipping is not None:
        shipping.start()
    roller.start()
    try:
        conn.recv()
    except (EOFError, OSError):
        os._exit(0)  # the server died (its threads here may hold locks: no clean exit)
    if shipping is not None:
        shipping.stop()
    roller.stop()  # after the last shipping: it rolls up what the workers left
    engine.dispose()
