"""`pointsman init` prints the first admin key; `keys` and `audit` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from pointsman.auth import KeyBook, hash_key
from pointsman.cli.main import cli
from pointsman.project import open_project
from pointsman.settings import load_settings


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_init_prints_a_working_admin_key_once(tmp_path: Path, database_url: str) -> None:
    folder = tmp_path / "proj"
    out = run("init", str(folder), "--database-url", database_url).output
    line = next(x for x in out.splitlines() if "admin key" in x)
    key = line.split()[-1]
    assert key.startswith("pk_") and len(key) > 40
    again = run("init", str(folder), "--database-url", database_url).output
    assert "admin key" not in again and key not in again
    project = open_project(load_settings(folder))
    try:
        (record,) = KeyBook(project.engine).list_keys()
    finally:
        project.close()
    assert (record.name, record.scopes, record.key_hash) == ("admin", ("admin",), hash_key(key))


def test_keys_create_list_rotate_revoke_and_audit(tmp_path: Path, database_url: str) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    p = ["--project", str(folder)]
    made = json.loads(
        run(*p, "keys", "create", "ci", "--scope", "predict:churn", "--scope", "read:churn",
            "--rate", "100/s", "--expires", "90d", "--json").output
    )  # fmt: skip
    assert made["key"].startswith("pk_") and made["scopes"] == ["predict:churn", "read:churn"]
    assert (made["rate"], made["state"]) == ("100/s", "active")
    plain = run(*p, "keys", "create", "batch", "--scope", "predict:*")
    assert plain.stdout.splitlines()[0].startswith("pk_")  # the key alone on stdout
    listed = json.loads(run(*p, "keys", "list", "--json").output)
    assert [k["name"] for k in listed] == ["admin", "batch", "ci"]
    assert made["key"] not in json.dumps(listed)
    rotated = json.loads(run(*p, "keys", "rotate", "ci", "--json").output)
    assert rotated["key"] != made["key"] and rotated["prefix"] == rotated["key"][:8]
    assert "Revoked key ci" in run(*p, "keys", "revoke", "ci").output
    gone = run(*p, "keys", "revoke", "ci", ok=False)
    assert gone.exit_code == 1 and "No active API key named 'ci'" in gone.output
    assert len(json.loads(run(*p, "keys", "list", "--all", "--json").output)) == 3
    bad = run(*p, "keys", "create", "x", "--scope", "write:churn", ok=False)
    assert "'write:churn' is not understood" in bad.output
    bad = run(*p, "keys", "create", "x", "--scope", "admin", "--rate", "fast", ok=False)
    assert "Rate 'fast' is not understood" in bad.output
    entries = json.loads(run(*p, "audit", "--action", "key", "--json").output)
    assert [e["action"] for e in entries] == [
        "key.create", "key.create", "key.create", "key.rotate", "key.revoke",
    ]  # fmt: skip
    revoke = entries[-1]
    assert revoke["before"]["state"] == "active" and revoke["after"]["state"] == "revoked"
    text = json.dumps(entries)
    assert made["key"] not in text and rotated["key"] not in text
    assert "key.revoke" in run(*p, "audit", "--since", "1h").output
    assert run(*p, "audit", "--since", "2999-01-01", "--json").output.strip() == "[]"


def test_register_and_deploy_are_audited_with_before_and_after(
    tmp_path: Path, database_url: str, iris_files: tuple[Path, Path]
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    p = ["--project", str(folder)]
    model, data = iris_files
    run(*p, "register", "iris", str(model), "--training-data", str(data), "--target", "species")
    run(*p, "deploy", "iris", "1")
    run(*p, "deploy", "iris", "1")
    entries = json.loads(run(*p, "audit", "--target", "model:iris", "--json").output)
    assert [e["action"] for e in entries] == ["register", "deploy", "deploy"]
    register, first, second = entries
    assert register["after"]["version"] == 1 and "pickle" in register["detail"]
    assert first["before"] is None and first["after"]["revision"] == 1
    assert second["before"]["revision"] == 1 and second["after"]["revision"] == 2
