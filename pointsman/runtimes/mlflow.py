"""MLflow model folders: the MLmodel file is read without importing anything it names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pointsman.errors import InvalidArtifact
from pointsman.runtimes.base import Runtime, RuntimeInfo
from pointsman.types import COLUMN_TYPES, ColumnSpec, Frame, Outputs, plain_list

_TENSOR_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "object": "string",
    "str": "string",
}


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The parsed MLmodel descriptor of an MLflow model folder."""
    try:
        data = yaml.safe_load((folder / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArtifact(f"Cannot read {folder / 'MLmodel'}: {exc}") from exc
    if not isinstance(data, dict) or "flavors" not in data:
        raise InvalidArtifact(f"{folder / 'MLmodel'} has no 'flavors' section.")
    return data


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name (from MLmodel) that would leave the model folder."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InvalidArtifact(
            f"MLmodel in {folder.name} names {name!r}, which is outside the model folder; "
            "paths in MLmodel must stay inside it."
        )
    return path


def load_mlflow(folder: Path, trusted: tuple[str, ...] = ()) -> Runtime:
    """Load an MLflow model through its sklearn or onnx flavor, else through mlflow itself."""
    mlmodel = read_mlmodel(folder)
    flavors = mlmodel["flavors"]
    runtime: Runtime
    if "sklearn" in flavors:
        from pointsman.runtimes.sklearn import SklearnRuntime

        conf = flavors["sklearn"]
        fmt = "skops" if conf.get("serialization_format") == "skops" else "sklearn"
        model_file = inside(folder, conf.get("pickled_model", "model.pkl"))
        runtime = SklearnRuntime.from_file(model_file, fmt, trusted)
    elif "onnx" in flavors:
        from pointsman.runtimes.onnx import OnnxRuntime

        runtime = OnnxRuntime.from_file(inside(folder, flavors["onnx"].get("data", "model.onnx")))
    else:
        runtime = PyfuncRuntime.from_folder(folder, list(flavors))
    columns = signature_columns(mlmodel)
    if columns is not None:
        runtime.info.inputs = columns
    runtime.info.input_example = input_example(folder, mlmodel, columns)
    runtime.info.platform = "mlflow_" + runtime.info.platform
    return runtime


def signature_columns(mlmodel: dict[str, Any]) -> list[ColumnSpec] | None:
    """Input columns from the MLmodel signature (column- or tensor-based), if declared."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    specs = json.loads(raw) if isinstance(raw, str) else raw
    columns: list[ColumnSpec] = []
    for i, spec in enumerate(specs):
        if spec.get("type") == "tensor":
            tensor = spec.get("tensor-spec", {})
            kind = _TENSOR_TYPES.get(str(tensor.get("dtype")))
            shape = tensor.get("shape") or []
            if kind is None or len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
                raise InvalidArtifact(
                    f"MLmodel tensor input {spec} is not supported: pointsman takes columns or "
                    "one 2-D tensor of a numeric, boolean or string dtype."
                )
            name = spec.get("name") or f"input-{i}"
            columns.extend(ColumnSpec(f"{name}_{k}", kind) for k in range(shape[1]))
        else:
            kind = spec.get("type")
            if kind not in COLUMN_TYPES:
                raise InvalidArtifact(
                    f"MLmodel column {spec.get('name')!r} has type {kind!r}; supported: "
                    f"{', '.join(sorted(COLUMN_TYPES))}."
                )
            nullable = not spec.get("required", True)
            columns.append(ColumnSpec(spec.get("name") or f"input-{i}", kind, nullable))
    return columns


def input_example(
    folder: Path, mlmodel: dict[str, Any], columns: list[ColumnSpec] | None
) -> list[dict[str, Any]] | None:
    """The saved input example as records, when the folder has one."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = inside(folder, info.get("artifact_path", "input_example.json"))
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data
    if isinstance(data, dict) and "inputs" in data and columns is not None:
        rows = np.asarray(data["inputs"]).reshape(-1, len(columns)).tolist()
        return [dict(zip([c.name for c in columns], r, strict=True)) for r in rows]
    return None


class PyfuncRuntime:
    """Any other MLflow flavor, through mlflow.pyfunc (needs the mlflow package)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.info = RuntimeInfo(outputs=["predictions"], framework=_framework(), platform="pyfunc")

    @classmethod
    def from_folder(cls, folder: Path, flavors: list[str]) -> PyfuncRuntime:
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise InvalidArtifact(
                f"This MLflow model has flavors {flavors}; pointsman reads the sklearn and onnx "
                "flavors itself, other flavors need the mlflow package: pip install mlflow."
            ) from exc
        return cls(mlflow.pyfunc.load_model(str(folder)))

    def predict(self, frame: Frame) -> Outputs:
        result = self.model.predict(pd.DataFrame(frame.columns, copy=False))
        if isinstance(result, pd.DataFrame):
            result = result.iloc[:, 0]
        return Outputs(plain_list(np.asarray(result).reshape(frame.n_rows, -1)[:, 0]))


def _framework() -> dict[str, str]:
    import mlflow

    return {"mlflow": mlflow.__version__}
