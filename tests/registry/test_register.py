"""Registering versions of every format, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.linear_model import LinearRegression, LogisticRegression

from pointsman.errors import (
    ArtifactTampered,
    InvalidArtifact,
    ModelNotFound,
    VersionNotFound,
)
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.registry.register import split_entrypoint
from tests.conftest import IRIS_COLUMNS, register_iris


def test_iris_version_has_signature_profile_and_lineage(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    assert register_iris(project, iris_files) == 1
    v = project.registry.get_version("iris", 1)
    assert v.format == "sklearn" and len(v.sha256) == 64
    assert [(c.name, c.type, c.nullable) for c in v.signature.inputs] == [
        (c, "double", False) for c in IRIS_COLUMNS
    ]
    assert v.signature.classes == (0, 1, 2)
    assert v.signature.outputs == ("predictions", "probabilities")
    petal = v.profile["features"]["petal_length"]
    assert petal["min"] == 1.0 and petal["max"] == 6.9 and petal["null_rate"] == 0.0
    assert len(petal["bin_edges"]) >= 2 and abs(sum(petal["bin_fractions"]) - 1) < 1e-9
    assert v.profile["outputs"]["predictions"]["kind"] == "categorical"
    data = v.lineage["training_data"]
    assert data["rows"] == 150 and data["columns"][-1] == "species" and len(data["sha256"]) == 64
    assert "scikit-learn" in v.lineage["packages"] and v.lineage["python"].startswith("3.")
    assert v.input_example and set(v.input_example[0]) == set(IRIS_COLUMNS)


def test_same_bytes_again_return_the_existing_version(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    path, data = iris_files
    sub = Submission(model="iris", path=path, training_data=data, target="species", user="a")
    first, created = project.registry.register(sub)
    again, created_again = project.registry.register(sub)
    assert created and not created_again and again.number == first.number == 1
    assert project.registry.version_numbers("iris") == [1]


def test_new_bytes_make_the_next_version_with_metrics_and_params(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    register_iris(project, iris_files)
    _, data = iris_files
    frame = pd.read_csv(data)
    model = LogisticRegression(C=0.1, max_iter=300).fit(frame[IRIS_COLUMNS], frame["species"])
    path = tmp_path / "iris2.joblib"
    joblib.dump(model, path)
    record, created = project.registry.register(
        Submission(
            model="iris",
            path=path,
            training_data=data,
            target="species",
            params={"C": "0.1"},
            metrics={"accuracy": 0.95},
            note="weaker",
            user="b",
        )
    )
    assert created and record.number == 2
    assert (
        record.lineage["params"] == {"C": "0.1"} and record.lineage["metrics"]["accuracy"] == 0.95
    )
    assert record.note == "weaker" and record.created_by == "b"
    assert [s.name for s in project.registry.list_models()] == ["iris"]
    assert project.registry.list_models()[0].versions == 2


def test_unknown_model_and_version_list_what_exists(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    register_iris(project, iris_files)
    with pytest.raises(ModelNotFound, match="known models: iris"):
        project.registry.get_version("nope", 1)
    with pytest.raises(VersionNotFound, match=r"versions: 1\)"):
        project.registry.get_version("iris", 7)
    with pytest.raises(VersionNotFound):
        project.registry.get_version("iris", "latest")


def test_tampered_artifact_refuses_to_load(project: Project, iris_files: tuple[Path, Path]) -> None:
    register_iris(project, iris_files)
    v = project.registry.get_version("iris", 1)
    stored = project.registry.artifacts.path_of(v.artifact)
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(ArtifactTampered, match="changed after registration"):
        project.registry.artifact_path(v)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-lead", "sp ace", "x" * 129])
def test_model_names_that_break_urls_are_refused(
    project: Project, iris_files: tuple[Path, Path], name: str
) -> None:
    path, data = iris_files
    with pytest.raises(InvalidArtifact, match="not allowed"):
        project.registry.register(Submission(model=name, path=path, training_data=data))


def test_missing_target_column_is_named(project: Project, iris_files: tuple[Path, Path]) -> None:
    path, data = iris_files
    sub = Submission(model="iris", path=path, training_data=data, target="label")
    with pytest.raises(InvalidArtifact, match=r"'label' is not in iris\.csv"):
        project.registry.register(sub)


def test_model_that_fails_on_its_training_data_is_refused(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    path, _ = iris_files
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(wrong, index=False)
    with pytest.raises(InvalidArtifact, match="failed on the training sample"):
        project.registry.register(Submission(model="iris", path=path, training_data=wrong))


def test_nulls_in_training_data_make_columns_nullable(project: Project, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=60), "city": rng.choice(["paris", "oslo", None], 60)}
    )
    frame.loc[::7, "x"] = np.nan
    frame["y"] = frame["x"].fillna(0) * 2
    data = tmp_path / "nulls.csv"
    frame.to_csv(data, index=False)
    source = tmp_path / "fill.py"
    source.write_text(
        textwrap.dedent(
            """
            import numpy as np

            class Doubler:
                def predict(self, frame):
                    return np.nan_to_num(frame["x"].to_numpy(dtype=float)) * 2
            """
        )
    )
    record, _ = project.registry.register(
        Submission(
            model="doubler", path=source, entrypoint="Doubler", training_data=data, target="y"
        )
    )
    spec = {c.name: c for c in record.signature.inputs}
    assert spec["x"].nullable and spec["x"].type == "double"
    assert spec["city"].nullable and spec["city"].type == "string"
    profile = record.profile["features"]
    assert 0.1 < profile["x"]["null_rate"] < 0.2
    assert set(profile["city"]["categories"]) == {"paris", "oslo"}
    assert record.format == "python" and record.signature.classes is None


def test_skops_and_onnx_formats(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from skl2onnx import to_onnx

    _, data = iris_files
    frame = pd.read_csv(data)
    x = frame[IRIS_COLUMNS]
    model = LogisticRegression(max_iter=500).fit(x, frame["species"])
    skops_path = tmp_path / "iris.skops"
    sio.dump(model, skops_path)
    record, _ = project.registry.register(
        Submission(model="iris-skops", path=skops_path, training_data=data, target="species")
    )
    assert record.format == "skops" and record.signature.classes == (0, 1, 2)
    onnx_path = tmp_path / "iris.onnx"
    onnx_path.write_bytes(to_onnx(model, x.to_numpy(np.float32)[:1]).SerializeToString())
    record, _ = project.registry.register(
        Submission(model="iris-onnx", path=onnx_path, training_data=data, target="species")
    )
    assert record.format == "onnx"
    # One float tensor of width 4: the training data names its columns.
    assert [c.name for c in record.signature.inputs] == IRIS_COLUMNS
    assert record.signature.classes == (0, 1, 2)
    # Without training data the ONNX inputs alone give the signature.
    bare, _ = project.registry.register(Submission(model="iris-onnx-bare", path=onnx_path))
    assert [c.type for c in bare.signature.inputs] == ["float"] * 4


def test_mlflow_folder_with_signature_and_example(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, data = iris_files
    frame = pd.read_csv(data)
    model = LinearRegression().fit(frame[IRIS_COLUMNS], frame["species"])
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    signature = [{"type": "double", "name": c, "required": True} for c in IRIS_COLUMNS]
    mlmodel = {
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
        },
        "signature": {"inputs": json.dumps(signature), "outputs": json.dumps([{"type": "tensor"}])},
        "saved_input_example_info": {"artifact_path": "input_example.json", "type": "dataframe"},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    example = {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}
    (folder / "input_example.json").write_text(json.dumps(example))
    record, _ = project.registry.register(Submission(model="iris-mlflow", path=folder))
    assert record.format == "mlflow" and record.platform == "mlflow_sklearn_joblib"
    assert record.signature.names == IRIS_COLUMNS and record.signature.classes is None
    assert record.input_example == [dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))]
    assert project.registry.artifact_path(record).is_dir()


def test_folder_without_mlmodel_is_refused(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    with pytest.raises(InvalidArtifact, match="without an MLmodel"):
        project.registry.register(Submission(model="x", path=folder))


def test_python_class_from_an_importable_module(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mods"
    package.mkdir()
    (package / "summer.py").write_text(
        "class Summer:\n    def predict(self, frame):\n        return frame.sum(axis=1)\n"
    )
    monkeypatch.syspath_prepend(str(package))
    data = tmp_path / "ab.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(data, index=False)
    path, entrypoint = split_entrypoint("summer:Summer")
    assert path.name == "summer.py" and entrypoint == "Summer"
    record, _ = project.registry.register(
        Submission(model="summer", path=path, entrypoint=entrypoint, training_data=data)
    )
    assert record.format == "python" and record.entrypoint == "Summer"
    assert [c.type for c in record.signature.inputs] == ["long", "long"]
