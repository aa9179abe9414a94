"""Lineage captured at registration without asking: environment, code commit, who and when."""

from __future__ import annotations

import getpass
import platform
import subprocess
from pathlib import Path
from typing import Any

from pointsman import __version__


def package_versions(names: list[str]) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out)."""
    from importlib import metadata  # a tenth of `pointsman models`' start: only to register

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(folder: Path) -> dict[str, Any] | None:
    """The commit checked out in `folder` (and whether it has uncommitted changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still register
        return "unknown"


def capture(framework: dict[str, str], folder: Path) -> dict[str, Any]:
    """Environment facts for a new version."""
    packages = {"pointsman": __version__, **framework}
    packages.update(package_versions(["scikit-learn", "numpy", "pandas", "scipy", "joblib"]))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": dict(sorted(packages.items())),
        "git": git_commit(folder),
    }
