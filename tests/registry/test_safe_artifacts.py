"""Safe artifacts: explicit skops trust, sha256 at every load, no path out of the folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import sqlalchemy as sa
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pointsman.errors import ArtifactTampered, InvalidArtifact, UnsafeArtifact
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.registry.loading import load_and_warm
from pointsman.store.tables import versions
from tests.registry.custom_types import clip01

CUSTOM = "tests.registry.custom_types.clip01"


@pytest.fixture
def custom_skops(tmp_path: Path) -> tuple[Path, Path]:
    """A .skops pipeline calling a function of ours (not trusted by skops), and its data."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.random((40, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame["a"] > 0.5).astype(int)
    model = make_pipeline(FunctionTransformer(clip01), LogisticRegression())
    model.fit(frame[["a", "b", "c"]], frame["y"])
    path, data = tmp_path / "custom.skops", tmp_path / "train.csv"
    sio.dump(model, path)
    frame.to_csv(data, index=False)
    return path, data


def test_skops_types_are_trusted_only_when_an_admin_lists_them(
    project: Project, custom_skops: tuple[Path, Path]
) -> None:
    path, data = custom_skops
    sub = Submission(model="custom", path=path, training_data=data, target="y", user="t")
    with pytest.raises(UnsafeArtifact, match=f"{CUSTOM}.*--trust {CUSTOM}"):
        project.registry.register(sub)
    sub.trusted_types = (CUSTOM,)
    record, _ = project.registry.register(sub)
    assert record.lineage["trusted_types"] == [CUSTOM]
    load_and_warm(project.registry.artifacts, record)
    # The trust is enforced at every load, from what was stored at registration.
    with project.engine.begin() as conn:
        conn.execute(versions.update().values(lineage={**record.lineage, "trusted_types": []}))
    stored = project.registry.get_version("custom", record.number)
    with pytest.raises(UnsafeArtifact, match=CUSTOM):
        load_and_warm(project.registry.artifacts, stored)


def test_the_sha256_is_checked_at_every_load(
    project: Project, custom_skops: tuple[Path, Path]
) -> None:
    path, data = custom_skops
    sub = Submission(model="custom", path=path, training_data=data, target="y", user="t")
    sub.trusted_types = (CUSTOM,)
    record, _ = project.registry.register(sub)
    load_and_warm(project.registry.artifacts, record)
    stored = project.registry.artifacts.path_of(record.artifact)
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(ArtifactTampered, match="changed after registration"):
        load_and_warm(project.registry.artifacts, record)


@pytest.mark.parametrize("field", ["pickled_model", "input_example"])
def test_mlmodel_paths_cannot_leave_the_model_folder(
    project: Project, tmp_path: Path, field: str
) -> None:
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    model = LogisticRegression().fit(np.random.default_rng(1).random((20, 2)), [0, 1] * 10)
    sio.dump(model, folder / "model.skops")
    (tmp_path / "outside.json").write_text(json.dumps({"columns": ["x"], "data": [[1]]}))
    sklearn = {"pickled_model": "model.skops", "serialization_format": "skops"}
    example = {"artifact_path": "input_example.json"}
    if field == "pickled_model":
        sklearn["pickled_model"] = "../../../../../../etc/passwd"
    else:
        example["artifact_path"] = "../outside.json"
    mlmodel = {"flavors": {"sklearn": sklearn}, "saved_input_example_info": example}
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(InvalidArtifact, match="outside the model folder"):
        project.registry.register(Submission(model="escape", path=folder, user="t"))


def test_stored_paths_cannot_leave_the_artifact_folder(project: Project) -> None:
    for rel in ("../pointsman.db", "ab/../../x", "/etc/passwd"):
        with pytest.raises(InvalidArtifact, match="outside the artifact folder"):
            project.registry.artifacts.path_of(rel)
    with project.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(versions)).scalar() == 0
