"""Artifacts in an S3 bucket (moto's S3 server on loopback): upload at register, download into
the sha256-keyed cache, verification before loading, `pointsman artifacts verify`."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import joblib
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

from pointsman.cli.main import cli
from pointsman.errors import (
    ArtifactMissing,
    ArtifactStoreUnavailable,
    ArtifactTampered,
    ConfigError,
    InvalidArtifact,
)
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.registry.loading import load_and_warm
from pointsman.registry.s3 import S3Artifacts, parse_s3_url
from pointsman.settings import load_settings
from pointsman.validation.signature import build_frame, records_to_columns
from tests.conftest import IRIS_COLUMNS, free_port, register_iris
from tests.serving import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def s3_project(tmp_path: Path, s3_bucket: str) -> Iterator[Project]:
    """A project (SQLite) whose artifacts are in the bucket, under the prefix `models`."""
    folder, _ = init_project(tmp_path / "project")
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(f'artifact_store = "s3://{s3_bucket}/models"\nstartup_wait_s = 30\n')
    opened = open_project(load_settings(folder))
    # As in tests/conftest.py's project: compiling (seconds a register) only where tested.
    opened.registry.compile_at_register = False
    yield opened
    opened.close()


def objects(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    found = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def mlflow_folder(tmp_path: Path, data: Path) -> Path:
    """An MLflow model folder (three files): stored as one object per file."""
    frame = pd.read_csv(data)
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    model = LinearRegression().fit(frame[IRIS_COLUMNS], frame["species"])
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    signature = [{"type": "double", "name": c, "required": True} for c in IRIS_COLUMNS]
    (folder / "MLmodel").write_text(
        yaml.safe_dump(
            {
                "flavors": {"sklearn": {"pickled_model": "model.pkl"}},
                "signature": {"inputs": json.dumps(signature)},
                "saved_input_example_info": {"artifact_path": "example.json"},
            }
        )
    )
    example = {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}
    (folder / "example.json").write_text(json.dumps(example))
    return folder


def empty_cache(project: Project) -> None:
    cache = project.settings.artifact_path()
    shutil.rmtree(cache)
    cache.mkdir()


def test_register_uploads_the_artifact_and_a_server_without_it_downloads_and_verifies(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path]
) -> None:
    number = register_iris(s3_project, iris_files)
    record = s3_project.registry.get_version("iris", number)
    stored = objects(s3_bucket)
    # The artifact, and the reference sample register keeps for a later compile.
    sample = (record.compiled or {})["sample"]["artifact"]
    assert sorted(stored) == sorted([f"models/{record.artifact}", f"models/{sample}"])
    assert stored[f"models/{record.artifact}"] == iris_files[0].read_bytes()
    # Another server: an empty cache. Loading downloads, checks the sha256, then loads.
    empty_cache(s3_project)
    assert not s3_project.registry.artifacts.is_local(record.artifact)
    path = s3_project.registry.artifact_path(record)
    assert path.read_bytes() == iris_files[0].read_bytes()
    assert path.parent.parent.name == record.sha256[:2] and path.parent.name == record.sha256
    runtime = load_and_warm(s3_project.registry.artifacts, record)
    assert runtime.info.framework is not None


def test_a_folder_artifact_is_one_object_per_file_and_comes_back_whole(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = mlflow_folder(tmp_path, iris_files[1])
    record, _ = s3_project.registry.register(Submission(model="flow", path=folder))
    key = f"models/{record.artifact}"
    assert sorted(objects(s3_bucket)) == [f"{key}/MLmodel", f"{key}/example.json",
                                          f"{key}/model.pkl"]  # fmt: skip
    empty_cache(s3_project)
    path = s3_project.registry.artifact_path(record)
    assert sorted(p.name for p in path.iterdir()) == ["MLmodel", "example.json", "model.pkl"]
    assert S3Artifacts(f"s3://{s3_bucket}/models", tmp_path / "c").check(
        record.artifact, record.sha256
    ) == sum(f.stat().st_size for f in folder.iterdir())


async def test_runners_of_a_server_with_an_empty_cache_answer_after_the_download(
    s3_project: Project, iris_files: tuple[Path, Path]
) -> None:
    number = register_iris(s3_project, iris_files)
    empty_cache(s3_project)
    s3_project.routes.deploy("iris", number, "t")  # its preflight downloads it
    empty_cache(s3_project)  # a fresh replica: the supervisor downloads before runners start
    async with serving(s3_project) as served:
        record = s3_project.registry.get_version("iris", number)
        rows = [dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))]
        raw, n, problems = records_to_columns(rows, record.signature)
        prediction = await served.predict("iris", build_frame(record.signature, raw, n, problems))
    assert prediction.outputs.predictions == [0]
    assert s3_project.registry.artifacts.is_local(
        s3_project.registry.get_version("iris", number).artifact
    )


async def test_a_missing_object_fails_the_version_with_its_key_and_nothing_is_served(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path]
) -> None:
    number = register_iris(s3_project, iris_files)
    s3_project.routes.deploy("iris", number, "t")
    record = s3_project.registry.get_version("iris", number)
    boto3.client("s3").delete_object(Bucket=s3_bucket, Key=f"models/{record.artifact}")
    empty_cache(s3_project)
    async with serving(s3_project) as served:
        readiness = served.catalog.readiness()
    assert not readiness["ready"]
    assert f"s3://{s3_bucket}/models/{record.artifact} is missing" in json.dumps(readiness)


def test_a_cached_copy_that_changed_is_downloaded_again(
    s3_project: Project, iris_files: tuple[Path, Path]
) -> None:
    record = s3_project.registry.get_version("iris", register_iris(s3_project, iris_files))
    cached = s3_project.registry.artifacts.path_of(record.artifact)
    cached.write_bytes(b"changed on the local disk")
    path = s3_project.registry.artifact_path(record)
    assert path.read_bytes() == iris_files[0].read_bytes()


def test_an_object_changed_in_the_bucket_refuses_to_load(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path]
) -> None:
    record = s3_project.registry.get_version("iris", register_iris(s3_project, iris_files))
    key = f"models/{record.artifact}"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=b"not the model")
    empty_cache(s3_project)
    with pytest.raises(ArtifactTampered, match=f"s3://{s3_bucket}/{key}.*changed after"):
        s3_project.registry.artifact_path(record)
    assert not s3_project.registry.artifacts.is_local(record.artifact)  # nothing cached
    with pytest.raises(ArtifactTampered):
        load_and_warm(s3_project.registry.artifacts, record)


def test_verify_names_each_missing_or_altered_version_and_exits_1(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    numbers = [
        register_iris(s3_project, iris_files),
        s3_project.registry.register(
            Submission(model="flow", path=mlflow_folder(tmp_path, iris_files[1]))
        )[0].number,
    ]
    p = ["--project", str(s3_project.settings.project_path())]
    ok = CliRunner().invoke(cli, [*p, "artifacts", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "Checked 2 version(s)" in ok.output and "all match" in ok.output
    s3 = boto3.client("s3")
    iris = s3_project.registry.get_version("iris", numbers[0])
    flow = s3_project.registry.get_version("flow", numbers[1])
    s3.delete_object(Bucket=s3_bucket, Key=f"models/{iris.artifact}")
    s3.put_object(Bucket=s3_bucket, Key=f"models/{flow.artifact}/MLmodel", Body=b"edited")
    bad = CliRunner().invoke(cli, [*p, "artifacts", "verify", "--json"])
    assert bad.exit_code == 1, bad.output
    result = json.loads(bad.output)
    assert result["store"] == f"s3://{s3_bucket}/models" and result["versions"] == 2
    problems = {(x["model"], x["version"]): x for x in result["problems"]}
    assert problems["iris", numbers[0]]["code"] == "artifact_missing"
    assert problems["flow", numbers[1]]["code"] == "artifact_tampered"
    text = CliRunner().invoke(cli, [*p, "artifacts", "verify"])
    assert text.exit_code == 1
    assert f"iris version {numbers[0]}:" in text.output and "is missing" in text.output
    assert f"flow version {numbers[1]}:" in text.output and "changed after" in text.output
    # The local cache still holds good copies: verify reads the bucket, not the cache.
    assert s3_project.registry.artifacts.is_local(iris.artifact)


def test_verify_a_local_folder_and_a_progress_bar_on_many_versions(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    path, data = iris_files
    model = joblib.load(path)
    for i in range(6):
        copy = tmp_path / f"iris-{i}.joblib"
        joblib.dump(model, copy, compress=i)  # other bytes, another artifact each
        register_iris(project, (copy, data), name=f"iris{i}")
    p = ["--project", str(project.settings.project_path())]
    ok = CliRunner().invoke(cli, [*p, "artifacts", "verify"])
    assert ok.exit_code == 0 and "Checked 6 version(s)" in ok.output, ok.output
    record = project.registry.get_version("iris3", 1)
    project.registry.artifacts.path_of(record.artifact).write_bytes(b"edited")
    bad = CliRunner().invoke(cli, [*p, "artifacts", "verify", "iris3"])
    assert bad.exit_code == 1 and "iris3 version 1:" in bad.output, bad.output
    assert "Checked 1 version(s)" in bad.output


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite: the artifact store is what these tests are about."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


def test_an_unreachable_store_or_bucket_is_a_clear_error(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = S3Artifacts("s3://no-such-bucket-here/x", tmp_path / "a")
    with pytest.raises(ArtifactStoreUnavailable, match="bucket 'no-such-bucket-here' does not"):
        missing.check("ab/abc/model.joblib", "0" * 64)
    present = S3Artifacts(f"s3://{s3_bucket}", tmp_path / "b")
    with pytest.raises(ArtifactMissing, match=f"s3://{s3_bucket}/ab/abc/m.joblib is missing"):
        present.fetch("ab/abc/m.joblib", "0" * 64)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    down = S3Artifacts(f"s3://{s3_bucket}", tmp_path / "c")
    with pytest.raises(ArtifactStoreUnavailable, match="AWS_ENDPOINT_URL"):
        down.check("ab/abc/m.joblib", "0" * 64)


@pytest.mark.parametrize("url", ["s3:/bucket", "gs://bucket/x", "s3://", "bucket/prefix"])
def test_an_artifact_store_that_is_not_an_s3_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="s3://BUCKET/PREFIX"):
        parse_s3_url(url)


def test_an_s3_url_names_its_bucket_and_prefix() -> None:
    assert parse_s3_url("s3://b") == ("b", "")
    assert parse_s3_url("s3://b/team/models/") == ("b", "team/models")


def test_nothing_reaches_the_bucket_or_the_store_unless_it_loaded_and_was_uploaded(
    s3_project: Project, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    iris_files: tuple[Path, Path],
) -> None:  # fmt: skip
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    with pytest.raises(InvalidArtifact, match=r"junk\.joblib"):
        s3_project.registry.register(Submission(model="iris", path=junk))
    assert objects(s3_bucket) == {}
    # The bucket unreachable at upload time: refused with the reason, no version written.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ArtifactStoreUnavailable, match="Cannot use the artifact store s3://"):
        register_iris(s3_project, iris_files)
    assert s3_project.registry.model_names() == []


async def test_a_compiled_model_and_its_sample_are_uploaded_and_downloaded_with_the_version(
    s3_project: Project, s3_bucket: str, iris_files: tuple[Path, Path]
) -> None:
    s3_project.registry.compile_at_register = True
    number = register_iris(s3_project, iris_files)
    record = s3_project.registry.get_version("iris", number)
    compiled = record.compiled or {}
    assert compiled.get("agreed") is True, compiled.get("reason")
    stored = objects(s3_bucket)
    for rel in (record.artifact, compiled["artifact"], compiled["sample"]["artifact"]):
        assert f"models/{rel}" in stored, (rel, sorted(stored))
    s3_project.routes.deploy("iris", number, "t")
    empty_cache(s3_project)  # a fresh replica: both the original and the ONNX file come down
    async with serving(s3_project) as served:
        rows = [dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))]
        raw, n, problems = records_to_columns(rows, record.signature)
        prediction = await served.predict("iris", build_frame(record.signature, raw, n, problems))
    assert prediction.outputs.predictions == [0]
    assert prediction.outputs.runtime == "compiled"
    assert s3_project.registry.artifacts.is_local(compiled["artifact"])
