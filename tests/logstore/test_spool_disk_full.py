"""The spool's filesystem full: the configured policy applies, and every record the spool
accepted is whole on disk (a small tmpfs mounted for the test; root only)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pointsman.errors import SpoolFull
from pointsman.logstore.spool import Spool, read_segment, segments_in
from tests.conftest import skip_or_fail


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (skipped where this process may not mount)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        skip_or_fail(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def record(i: int) -> dict[str, object]:
    return {"request_id": f"r{i:06d}", "inputs": {"x": ["y" * 200]}}


@pytest.mark.parametrize("policy", ["refuse", "drop"])
def test_a_full_filesystem_applies_the_policy_and_keeps_every_accepted_record(
    small_fs: Path, policy: str
) -> None:
    spool = Spool(small_fs / "spool", segment_bytes=16_384, budget_bytes=10**9,
                  refuse_when_full=policy == "refuse")  # fmt: skip
    accepted, refused = 0, 0
    for i in range(1000):
        try:
            spool.append(record(i))
        except SpoolFull:
            refused += 1
            continue
        accepted += 1
    if policy == "refuse":
        assert refused > 0 and spool.dropped == 0
        assert accepted == spool.appended
    else:
        assert refused == 0 and spool.dropped > 0
        assert spool.appended + spool.dropped == 1000
    spool.seal()
    stored = [r for seg in segments_in(spool.folder) for r in read_segment(seg)]
    assert len(stored) == spool.appended  # no torn line swallowed a record
    assert len({r["request_id"] for r in stored}) == spool.appended
