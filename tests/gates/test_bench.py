"""`pointsman bench`: versions side by side in one run; a version slowed by a sleep fails it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pointsman.cli.main import cli
from tests.gates.synthetic import inputs

MODEL = '''
import time


class Sums:
    """x1 + x2 (+ {offset}), after {sleep_s} s ({name})."""

    def predict(self, frame):
        time.sleep({sleep_s})
        return (frame["x1"] + frame["x2"] + {offset}).to_numpy()
'''
# Timing on a shared machine: CI would set thresholds as loose for versions alike.
GATE = """
[gate]
max_p99_ratio = 1.5
bench_slack_ms = 60
max_mean_abs_diff = 0.01
bench_rows = [1, 8]
bench_concurrency = [1]
bench_requests = 12
"""


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def write_model(folder: Path, name: str, sleep_s: float, offset: float = 0.0) -> Path:
    path = folder / f"{name}.py"
    path.write_text(MODEL.format(sleep_s=sleep_s, name=name, offset=offset))
    return path


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, str], Path]:
    """`sums` v1 (in force), v2 (the same code, another file), v3 (sleeps 150 ms a call),
    v4 (answers 1 more); a test set; the [gate] thresholds."""
    root = tmp_path_factory.mktemp("bench")
    folder = root / "proj"
    run("init", str(folder))
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(GATE)
    p = ("--project", str(folder))
    data = root / "train.csv"
    inputs(100).assign(y=0.0).to_csv(data, index=False)
    test = inputs(50, seed=4)
    test.assign(y=test["x1"] + test["x2"]).to_csv(root / "test.csv", index=False)
    for name, sleep_s, offset in (
        ("fast", 0.0, 0.0), ("same", 0.0, 0.0), ("slow", 0.15, 0.0), ("off", 0.0, 1.0),
    ):  # fmt: skip
        source = write_model(root, name, sleep_s, offset)
        run(*p, "register", "sums", f"{source}:Sums", "--training-data", str(data),
            "--target", "y", "--no-compile")  # fmt: skip
    run(*p, "deploy", "sums", "1")
    return p, root


def bench(proj: tuple[tuple[str, str], Path], *args: str, code: int = 0) -> dict[str, object]:
    p, root = proj
    out = root / "bench.json"
    run(*p, "bench", "sums", *args, "--rows", "1,8", "--concurrency", "1,2", "--requests", "8",
        "--json", str(out), code=code)  # fmt: skip
    data: dict[str, object] = json.loads(out.read_text())
    return data


def test_a_version_slowed_by_a_sleep_fails_the_p99_ratio(
    proj: tuple[tuple[str, str], Path],
) -> None:
    report = bench(proj, "3", "--max-p99-ratio", "1.2", code=1)
    versions = report["versions"]
    assert isinstance(versions, dict) and set(versions) == {"v1", "v3"}
    assert report["baseline"] == "v1"
    cells = {k for k in versions["v3"] if k != "peak_memory_bytes"}
    assert cells == {"1 rows x 1", "1 rows x 2", "8 rows x 1", "8 rows x 2"}
    assert versions["v3"]["1 rows x 1"]["p50_ms"] >= 150
    assert versions["v1"]["peak_memory_bytes"] > 0
    failures = report["failures"]
    assert isinstance(failures, list) and len(failures) == 4 and "v3 p99" in failures[0]


def test_the_same_code_passes_and_without_a_threshold_nothing_fails(
    proj: tuple[tuple[str, str], Path],
) -> None:
    # Timing on a shared machine: a loose ratio for "the same", as CI would run it.
    assert bench(proj, "2", "--max-p99-ratio", "5", "--slack-ms", "60")["passed"] is True
    assert bench(proj, "2", "3")["passed"] is True
    p, _ = proj
    text = run(*p, "bench", "sums", "--rows", "1", "--concurrency", "1", "--requests", "4").output
    assert "side by side against v1" in text and "PASS" in text
    assert "whole numbers" in run(*p, "bench", "sums", "--rows", "0", code=2).output


def gate(proj: tuple[tuple[str, str], Path], version: str, code: int) -> Result:
    p, root = proj
    return run(*p, "gate", "sums", version, "--data", str(root / "test.csv"), "--target", "y",
               code=code)  # fmt: skip


def test_gate_passes_a_version_alike_and_fails_a_slow_or_different_one(
    proj: tuple[tuple[str, str], Path],
) -> None:
    passed = gate(proj, "2", 0).output
    assert "GATE PASSED" in passed and "50 test rows, 0 would be refused" in " ".join(
        passed.split()
    )
    slow = " ".join(gate(proj, "3", 1).output.split())
    assert "GATE FAILED" in slow and "bench: v3 p99" in slow and "diff:" not in slow
    off = " ".join(gate(proj, "4", 1).output.split())
    assert "diff: mean absolute difference 1 > 0.01" in off and "bench:" not in off
    p, root = proj
    out = root / "gate.json"
    run(*p, "gate", "sums", "4", "--data", str(root / "test.csv"), "--json", str(out), code=1)
    report = json.loads(out.read_text())
    assert report["passed"] is False and report["thresholds"]["max_mean_abs_diff"] == 0.01
