"""`pointsman register --url`: a version uploaded to a served app (a real `pointsman serve` on
127.0.0.1), registered there with a `register:MODEL` key, into an S3 bucket the client never
touches; and each refusal: 401/403, 413 past max_upload_bytes, 422 on a digest mismatch,
400 for an artifact that does not load, malformed uploads."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from click.testing import CliRunner

from pointsman.auth import KeyBook
from pointsman.auth.audit import read_audit
from pointsman.cli.main import cli
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.registry.upload import pack
from pointsman.settings import load_settings
from tests.conftest import Server

LIMIT = 64 * 1024


SCOPES = {
    "ci": ["register:iris"],
    "ci-all": ["register:*"],
    "ci-churn": ["register:churn"],
    "app": ["predict:iris", "read:iris"],
    "ops": ["admin"],
}


@dataclass
class Remote:
    project: Project
    server: Server
    bucket: str
    keys: dict[str, str]

    def url(self, model: str) -> str:
        return f"{self.server.url}/v1/admin/models/{model}/versions"


@pytest.fixture
def remote(tmp_path: Path, s3_bucket: str) -> Iterator[Remote]:
    """A served project whose artifacts are in a bucket, accepting uploads up to 64 KiB."""
    folder, _ = init_project(tmp_path / "served")
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(f'artifact_store = "s3://{s3_bucket}/store"\nmax_upload_bytes = {LIMIT}\n')
    project = open_project(load_settings(folder))
    book = KeyBook(project.engine)
    keys = {name: book.create(name, scopes, "t")[0] for name, scopes in SCOPES.items()}
    server = Server(folder)
    try:
        yield Remote(project, server, s3_bucket, keys)
    finally:
        server.stop()
        project.close()


def register(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    # The client has no project and no access to the bucket: only the URL and a key.
    clean = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "none"}
    result = CliRunner().invoke(cli, ["register", *args], env={**clean, **(env or {})})
    return result.exit_code, result.output


def test_a_ci_key_registers_through_the_server_into_the_bucket(
    remote: Remote, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    path, data = iris_files
    key = remote.keys["ci"]
    args = ["iris", str(path), "--training-data", str(data), "--target", "species",
            "--metric", "auc=0.97", "--note", "from CI", "--url", remote.server.url]  # fmt: skip
    code, out = register(*args, "--key", key)
    assert code == 0, out
    assert f"Registered iris version 1 on {remote.server.url}" in out
    record = remote.project.registry.get_version("iris", 1)
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.profile is not None and record.lineage["metrics"] == {"auc": 0.97}
    assert record.note == "from CI" and record.created_by.startswith("ci (for ")
    stored = boto3.client("s3").get_object(Bucket=remote.bucket, Key=f"store/{record.artifact}")
    assert stored["Body"].read() == path.read_bytes()
    audit = read_audit(remote.project.engine, action="register")
    assert [(e.target, e.after["version"]) for e in audit] == [("model:iris", 1)]
    assert audit[0].who == record.created_by
    # The same bytes again: the existing version (200), from $POINTSMAN_KEY this time.
    again = CliRunner().invoke(cli, ["register", *args, "--json"], env={"POINTSMAN_KEY": key})
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["created"] is False and json.loads(again.stdout)["version"] == 1
    # Deployable at once: the server downloads nothing it does not already hold.
    deploy = httpx.post(
        f"{remote.server.url}/v1/admin/models/iris/deploy",
        json={"version": 1},
        headers={"Authorization": f"Bearer {remote.keys['ops']}"},
        timeout=60,
    )
    assert deploy.status_code == 200, deploy.text


def test_keys_without_the_register_scope_are_refused(
    remote: Remote, iris_files: tuple[Path, Path]
) -> None:
    path, data = iris_files
    args = ["iris", str(path), "--training-data", str(data), "--target", "species",
            "--url", remote.server.url]  # fmt: skip
    code, out = register(*args)
    assert code == 1 and "401" in out, out
    code, out = register(*args, "--key", "pk_" + "x" * 43)
    assert code == 1 and "401" in out, out
    code, out = register(*args, "--key", remote.keys["app"])
    assert code == 1 and "403" in out and "register:iris" in out, out
    code, out = register(*args, "--key", remote.keys["ci-churn"])
    assert code == 1 and "403" in out and "register:iris" in out, out
    assert remote.project.registry.model_names() == []
    code, out = register(*args, "--key", remote.keys["ci-all"])
    assert code == 0, out


def upload(
    remote: Remote,
    body: bytes,
    digest: str | None = None,
    chunked: bool = False,
    content_type: str = "application/x-tar",
) -> httpx.Response:
    """POST `body` as an upload (with its own sha256 unless `digest`); `chunked`: no length."""
    sent = {
        "Authorization": f"Bearer {remote.keys['ops']}",
        "Content-Type": content_type,
        "X-Pointsman-Sha256": digest or hashlib.sha256(body).hexdigest(),
    }
    content = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
    return httpx.post(remote.url("iris"), content=content, headers=sent, timeout=60)


def bundle(sub: Submission, tmp_path: Path) -> bytes:
    target = tmp_path / "upload.tar"
    pack(sub, target)
    return target.read_bytes()


def test_refusals_name_what_was_wrong(
    remote: Remote, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    path, data = iris_files
    good = bundle(Submission("iris", path, training_data=data, target="species"), tmp_path)
    # Past max_upload_bytes: 413, nothing stored.
    big = good + b"\0" * (LIMIT + 1 - len(good))  # one byte too many
    r = upload(remote, big)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large" and "max_upload_bytes" in r.json()["error"]
    # Without Content-Length (chunked): counted as it arrives, refused at the limit.
    r = upload(remote, big, chunked=True)
    assert r.status_code == 413 and f"of {LIMIT + 1} bytes" in r.json()["error"], r.text
    # The body changed on the way (or a wrong digest): 422.
    r = upload(remote, good, digest="0" * 64)
    assert r.status_code == 422 and r.json()["code"] == "digest_mismatch", r.text
    assert "0" * 64 in r.json()["error"] and hashlib.sha256(good).hexdigest() in r.json()["error"]
    # The archive is intact but its artifact is not the one the client hashed: 422 too.
    forged = tmp_path / "forged.tar"
    with tarfile.open(tmp_path / "upload.tar") as src, tarfile.open(forged, "w") as dst:
        for member in src.getmembers():
            content = src.extractfile(member)
            raw = content.read() if content is not None else b""
            if member.name.startswith("artifact/"):
                raw = raw[:-1] + bytes([raw[-1] ^ 1])
            dst.addfile(member, io.BytesIO(raw))
    r = upload(remote, forged.read_bytes())
    assert r.status_code == 422 and "unpacked artifact" in r.json()["error"], r.text
    # Not tar, no digest, another media type: 400, 400, 415.
    assert upload(remote, b"plain bytes").status_code == 400
    r = upload(remote, good, digest="abc")
    assert r.status_code == 400 and "X-Pointsman-Sha256" in r.json()["error"]
    assert upload(remote, good, content_type="application/json").status_code == 415
    assert remote.project.registry.model_names() == []
    # An artifact that does not load: the register error, as a 400, through the CLI.
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle at all")
    key = remote.keys["ci"]
    code, out = register("iris", str(junk), "--url", remote.server.url, "--key", key)
    assert code == 1 and "400" in out, out
    assert "Could not load junk.joblib" in out
    r = upload(remote, bundle(Submission("iris", junk), tmp_path))
    assert r.status_code == 400 and r.json()["code"] == "invalid_artifact", r.text
    assert r.json()["error"].startswith("Could not load junk.joblib as a scikit-learn model")
    assert remote.project.registry.model_names() == []
    assert not list(remote.project.settings.artifact_path().glob(".upload-*"))  # cleaned up
    assert upload(remote, good).status_code == 201
