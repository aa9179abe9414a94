"""The runners' folder, shared by a supervisor and the HTTP workers it serves.

It holds each runner's socket, status and watch slot, a scratch folder per runner, the
supervisor's published `state.json`, and `wanted/`: versions an HTTP worker asked for (a
pinned version no route holds, or a version about to be routed), one marker file each.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from pointsman.errors import ModelNotReady

STATE = "state.json"
PREFLIGHT_S = 300.0  # longest a route change waits for a new version to load
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def new_run_dir() -> Path:
    """A fresh private folder with a short path (Unix socket paths stop at 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="pm-", dir=_short_tmp()))


def _short_tmp() -> str:
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= 40 else "/tmp"


def runner_name(model: str, version: int, index: int) -> str:
    """`churn-2-0`; long or unusual model names are shortened with a hash."""
    slug = _SAFE.sub("_", model)
    if len(slug) > 32 or slug != model:
        slug = slug[:20] + "_" + hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"{slug}-{version}-{index}"


class RunDir:
    """Paths and files under one runners' folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def socket(self, name: str) -> Path:
        return self.root / f"{name}.sock"

    def slot(self, name: str) -> Path:
        return self.root / f"{name}.slot"

    def status(self, name: str) -> Path:
        return self.root / f"{name}.status"

    def scratch(self, name: str) -> Path:
        return self.root / "scratch" / name

    def sockets(self, model: str, version: int, replicas: int) -> list[Path]:
        return [self.socket(runner_name(model, version, i)) for i in range(replicas)]

    # -- what the supervisor publishes ------------------------------------------------
    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.root / f".{STATE}.{os.getpid()}"
        tmp.write_bytes(orjson.dumps(state))
        tmp.replace(self.root / STATE)

    def read_state(self) -> dict[str, Any]:
        try:
            data = orjson.loads((self.root / STATE).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- what HTTP workers ask for ----------------------------------------------------
    def want(self, model: str, version: int) -> None:
        """Ask the supervisor to run `version` (again) for a while, though no route has it."""
        folder = self.root / "wanted"
        folder.mkdir(exist_ok=True)
        marker = folder / f"{version}@{model}"
        marker.touch()

    def wanted(self, idle_s: float) -> list[tuple[str, int]]:
        """Versions asked for within the last `idle_s` seconds (older markers are removed)."""
        folder = self.root / "wanted"
        out = []
        now = time.time()
        for marker in folder.glob("*@*") if folder.exists() else []:
            try:
                age = now - marker.stat().st_mtime
            except FileNotFoundError:
                continue
            number, _, model = marker.name.partition("@")
            if age > idle_s:
                marker.unlink(missing_ok=True)
            elif number.isdigit():
                out.append((model, int(number)))
        return out

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def version_state(self, model: str, version: int) -> dict[str, Any] | None:
        """The published state of a version's runners, if the supervisor runs it."""
        found = self.read_state().get("versions", {}).get(f"{model}:{version}")
        return found if isinstance(found, dict) else None

    def wait_warm(self, model: str, version: int, timeout_s: float) -> str | None:
        """Ask for `version` and wait until a runner of it is ready (None) or failed (why)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.want(model, version)
            state = self.version_state(model, version) or {}
            runners = state.get("runners") or []
            if any(r.get("state") == "ready" for r in runners):
                return None
            failed = [r for r in runners if r.get("state") == "failed"]
            if failed and len(failed) == len(runners):
                return str(failed[0].get("error") or "failed to load")
            time.sleep(0.05)
        return f"no runner was ready within {timeout_s:g} s"

    def preflight(self, model: str, numbers: list[int]) -> None:
        """A route change made through a server waits for its new versions' runners."""
        for number in numbers:
            problem = self.wait_warm(model, number, PREFLIGHT_S)
            if problem is not None:
                raise ModelNotReady(model, str(number), problem)
