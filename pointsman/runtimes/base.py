"""The Runtime protocol, format detection and the loader table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pointsman.errors import InvalidArtifact
from pointsman.types import ColumnSpec, Frame, Outputs

FORMATS = ("sklearn", "skops", "onnx", "mlflow", "python")


@dataclass
class RuntimeInfo:
    """What a loaded artifact tells about itself (used at registration)."""

    inputs: list[ColumnSpec] | None = None  # from the artifact's own metadata, if it has any
    outputs: list[str] | None = None
    classes: list[Any] | None = None
    input_example: list[dict[str, Any]] | None = None
    framework: dict[str, str] | None = None  # package name → version the artifact needs
    platform: str = ""


class Runtime(Protocol):
    """A loaded model version. Implementations must be safe to call from several threads.

    `predict` receives a Frame whose columns already passed the signature checks, in
    signature order, and returns one prediction per row (and probabilities when the
    model has them, with `classes` in the same order as the probability columns).
    """

    info: RuntimeInfo

    def predict(self, frame: Frame) -> Outputs: ...


def detect_format(path: Path, entrypoint: str | None = None) -> str:
    """Guess the format of an artifact from its name and contents."""
    if entrypoint is not None or path.suffix == ".py":
        return "python"
    if path.is_dir():
        if (path / "MLmodel").exists():
            return "mlflow"
        raise InvalidArtifact(
            f"{path} is a folder without an MLmodel file. Folders are read as MLflow models; "
            "give a model file (.joblib, .pkl, .skops, .onnx) or an MLflow model folder."
        )
    suffix = path.suffix.lower()
    if suffix in (".joblib", ".pkl", ".pickle"):
        return "sklearn"
    if suffix == ".skops":
        return "skops"
    if suffix == ".onnx":
        return "onnx"
    with path.open("rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80":
        return "sklearn"
    raise InvalidArtifact(
        f"Cannot tell the format of {path.name}. Name it .joblib/.pkl (scikit-learn), .skops, "
        ".onnx, or pass --format {sklearn,skops,onnx,mlflow,python}."
    )


def load_runtime(
    fmt: str, path: Path, entrypoint: str | None = None, trusted: tuple[str, ...] = ()
) -> Runtime:
    """Load an artifact of format `fmt` stored at `path`; `trusted`: skops types an admin
    accepted at registration (any other type that skops does not trust is refused)."""
    # Imports are per format so that a project never pays for frameworks it does not use.
    if fmt in ("sklearn", "skops"):
        from pointsman.runtimes.sklearn import SklearnRuntime

        return SklearnRuntime.from_file(path, fmt, trusted)
    if fmt == "onnx":
        from pointsman.runtimes.onnx import OnnxRuntime

        return OnnxRuntime.from_file(path)
    if fmt == "mlflow":
        from pointsman.runtimes.mlflow import load_mlflow

        return load_mlflow(path, trusted)
    if fmt == "python":
        from pointsman.runtimes.pyclass import PythonClassRuntime

        return PythonClassRuntime.from_file(path, entrypoint or "")
    raise InvalidArtifact(f"Unknown format {fmt!r}; known formats: {', '.join(FORMATS)}.")
