"""Each worker's spool: prediction records appended to segment files before the response leaves.

One writer per worker process, in its own folder under the spool root. A record is one line
of JSON written with a single unbuffered `os.write` to an O_APPEND file: once the call
returns the kernel holds the bytes, so a process killed with SIGKILL loses nothing it
answered (a power loss can, unless `fsync` is on). The folder's lock file is held with
flock for the worker's life; the kernel releases it when the process dies however it dies,
which is how the shipper (logstore/shipper.py, one per server) knows the folder is orphaned.

The worker only appends and seals; the shipper, in another process, reads. In a live folder
the highest-numbered segment is the one being written (the next is created only after it is
closed), so every lower one is sealed and the shipper may take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pointsman.errors import SpoolFull

log = logging.getLogger("pointsman.logstore")

LOCK = "lock"
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"
WARN_FRACTION = 0.8
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def dumps(record: dict[str, Any]) -> bytes:
    """One record as one line of JSON."""
    return orjson.dumps(record, default=_default, option=_DUMP)


class Spool:
    """This worker's segment files: append on the request path, seal for the shipper."""

    def __init__(
        self,
        root: Path,
        *,
        segment_bytes: int,
        budget_bytes: int,
        refuse_when_full: bool = False,
        fsync: bool = False,
    ) -> None:
        self.root = root
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder = root / self.worker
        self.segment_bytes = segment_bytes
        self.budget_bytes = budget_bytes
        self.refuse_when_full = refuse_when_full
        self.fsync = fsync
        self.dropped = 0  # records not kept because the spool was past its budget
        self.appended = 0
        self.used_bytes = 0  # on disk in every folder under root (refreshed each round)
        self._warned = False
        self._disk_full = False  # logged once per episode; re-armed when a write succeeds
        self._lock = threading.Lock()  # sealed from the worker's background thread
        # Locked under a hidden name, then renamed: no other worker can take a folder that
        # exists under its real name for an orphan before its owner holds the lock.
        hidden = root / f".new-{self.worker}"
        hidden.mkdir(parents=True)
        self._lock_fd = os.open(hidden / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        hidden.rename(self.folder)
        self._number = 0
        self._fd = -1
        self._size = 0
        self._path = self.folder
        self._open_next()

    # -- the request path ---------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Write one record; past the budget, drop and count it or raise SpoolFull."""
        line = dumps(record)
        with self._lock:
            if self.used_bytes + len(line) > self.budget_bytes:
                self._over_budget()
                return
            if not self._write(line):
                self._over_budget()  # the filesystem is full: as past the budget
                return
            if self.fsync:
                os.fsync(self._fd)
            self._disk_full = False
            self._size += len(line)
            self.used_bytes += len(line)
            self.appended += 1
            if self._size >= self.segment_bytes:
                self._open_next()
        if not self._warned and self.used_bytes > WARN_FRACTION * self.budget_bytes:
            self._warned = True
            log.warning(
                "prediction log spool at %d of %d bytes (%.0f %%): the store is not taking "
                "records; past the budget records are %s",
                self.used_bytes, self.budget_bytes, 100 * self.used_bytes / self.budget_bytes,
                "refused with 503" if self.refuse_when_full else "dropped (and counted)",
            )  # fmt: skip

    def _write(self, line: bytes) -> bool:
        """Append one whole line; False (nothing left behind) when the disk is full."""
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            written = -1
        if written == len(line):
            return True
        if written != 0:  # a torn line would swallow the next record: cut it off
            os.ftruncate(self._fd, self._size)
        if not self._disk_full:
            self._disk_full = True
            log.error(
                "the prediction log spool's filesystem is full (%s): records are %s until "
                "space is freed", self.root,
                "refused with 503" if self.refuse_when_full else "dropped (and counted)",
            )  # fmt: skip
        return False

    def _over_budget(self) -> None:
        if self.refuse_when_full:
            raise SpoolFull(self.used_bytes, self.budget_bytes)
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error(
                "prediction log spool full (%d bytes): %d records dropped so far",
                self.used_bytes, self.dropped,
            )  # fmt: skip

    # -- for the shipper ----------------------------------------------------------------
    def seal_if_shipped(self) -> None:
        """Seal, unless segments sealed before wait still: while the store is away, records
        accumulate in the open segment instead of in one small file per round."""
        if not self.sealed_segments():
            self.seal()

    def seal(self) -> None:
        """Close the segment being written (if it holds anything) so it can be shipped."""
        with self._lock:
            if self._size > 0:
                self._open_next()

    def sealed_segments(self) -> list[Path]:
        """This worker's closed segments, oldest first."""
        with self._lock:
            current = self._number
        return [p for p in segments_in(self.folder) if segment_number(p) < current]

    def refresh_usage(self) -> int:
        """Bytes under the spool root (every worker's), and re-arm the warning below it."""
        used = spool_bytes(self.root)
        with self._lock:
            self.used_bytes = used
        if used < WARN_FRACTION * self.budget_bytes:
            self._warned = False
        return used

    def close(self) -> None:
        """Close the files; the folder goes too if nothing in it is left to ship."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                if self._size == 0:
                    self._path.unlink(missing_ok=True)
            if not segments_in(self.folder):
                for leftover in self.folder.iterdir():
                    leftover.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.folder.rmdir()
            os.close(self._lock_fd)

    def _open_next(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._number += 1
        self._path = self.folder / f"{SEGMENT_PREFIX}{self._number:08d}{SEGMENT_SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0


def spool_bytes(root: Path) -> int:
    """Bytes of segments under the spool root, every worker's (shipped ones are deleted)."""
    used = 0
    for path in root.glob(f"*/{SEGMENT_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):  # shipped meanwhile
            used += path.stat().st_size
    return used


def segments_in(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"), key=segment_number)


def segment_number(path: Path) -> int:
    return int(path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)])


def read_segment(path: Path) -> list[dict[str, Any]]:
    """The records of a segment; a torn last line (disk full mid-write) is skipped."""
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.error("skipping a torn record in %s", path)
    return records


class Orphan:
    """Another worker's folder whose lock we hold: its process is gone."""

    def __init__(self, folder: Path, lock_fd: int) -> None:
        self.folder = folder
        self.lock_fd = lock_fd

    def release(self, remove: bool) -> None:
        if remove:
            for leftover in self.folder.iterdir():
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # another worker just opened its lock file
                self.folder.rmdir()
        os.close(self.lock_fd)


def worker_folders(root: Path) -> list[Path]:
    """The workers' folders under `root` (not one still being set up), in name order."""
    if not root.exists():
        return []
    return [f for f in sorted(root.iterdir()) if not f.name.startswith(".") and f.is_dir()]


def claim(folder: Path) -> Orphan | None:
    """`folder` locked by us if its worker is gone (its lock is free), else None."""
    try:
        fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    except FileNotFoundError:  # removed just now: its worker closed it empty
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # alive (or being shipped by another shipper)
        os.close(fd)
        return None
    if not folder.exists():
        os.close(fd)
        return None
    return Orphan(folder, fd)
