"""`pointsman runners`: specs from pointsman.toml and the store, shown, changed, refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner, Result

from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


def test_specs_layer_toml_then_store_and_changes_are_audited(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write('\n[runners."*"]\ntimeout = "5s"\n\n[runners.churn]\nreplicas = 2\n')
    p = ["--project", str(folder)]
    for path, data in churn_files:
        run(*p, "register", "churn", str(path), "--training-data", str(data), "--target", TARGET)
    run(*p, "deploy", "churn", "1")

    (model, v1) = json.loads(run(*p, "runners", "churn", "--json").output)
    assert (model["version"], v1["version"]) == (None, 1)
    assert (v1["spec"]["replicas"], v1["spec"]["timeout_s"], v1["spec"]["memory_bytes"]) == (
        2, 5.0, None,
    )  # fmt: skip

    out = flat(run(*p, "runners", "churn", "--memory", "1GiB", "--cpu", "0.5").output)
    assert "churn runners: 2 replicas, 0.5 CPU, 1 GiB, 5 s per call" in out
    out = flat(run(*p, "runners", "churn", "--version", "2", "--memory", "none").output)
    assert "churn version 2 runners: 2 replicas, 0.5 CPU, no memory limit" in out

    rows = json.loads(run(*p, "runners", "--json").output)
    by_version = {r["version"]: r["spec"] for r in rows}
    assert by_version[1]["memory_bytes"] == 1 << 30 and by_version[2]["memory_bytes"] is None
    table = flat(run(*p, "runners").output)
    assert "Limits are enforced by" in table

    audit = flat(run(*p, "audit", "--action", "runners").output)
    assert "runners:churn:2" in audit and "runners:churn" in audit


def test_bad_runner_settings_are_refused_with_the_fix(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    p = ["--project", str(folder)]
    path, data = churn_files[0]
    run(*p, "register", "churn", str(path), "--training-data", str(data), "--target", TARGET)
    cases = [
        (["churn", "--memory", "1x"], "--memory '1x' is not a size; write e.g. 512MiB"),
        (["churn", "--memory", "64MiB"], "memory must be at least 512 MiB"),
        (["churn", "--cpu", "lots"], "--cpu 'lots' is not a number of CPUs"),
        (["churn", "--replicas", "0"], "replicas must be 1 to 64"),
        (["churn", "--timeout", "soon"], "--timeout 'soon' is not a duration"),
        (["nope", "--replicas", "2"], "Model 'nope' not found"),
        (["churn", "--version", "7", "--replicas", "2"], "7"),
        (["--replicas", "2"], "Name the MODEL to change"),
    ]
    for args, phrase in cases:
        result = run(*p, "runners", *args, ok=False)
        assert result.exit_code != 0, (args, result.output)
        assert phrase in flat(result.output), (args, result.output)
        assert "Traceback" not in result.output
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write('\n[runners."churn:x"]\nreplicas = 2\n')
    result = run(*p, "runners", ok=False)
    assert "write MODEL or MODEL:VERSION" in flat(result.output), result.output


def test_replicas_default_to_half_the_cpus_the_server_may_use(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    p = ["--project", str(folder)]
    path, data = churn_files[0]
    run(*p, "register", "churn", str(path), "--training-data", str(data), "--target", TARGET)
    (model,) = json.loads(run(*p, "runners", "churn", "--json").output)
    assert model["spec"]["replicas"] == max(1, len(os.sched_getaffinity(0)) // 2)
