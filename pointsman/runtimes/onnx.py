"""ONNX models through onnxruntime (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pointsman.errors import InvalidArtifact
from pointsman.runtimes.base import RuntimeInfo
from pointsman.types import ColumnSpec, Frame, Outputs, plain_list

_ONNX_TYPES = {
    "tensor(float)": ("float", np.float32),
    "tensor(double)": ("double", np.float64),
    "tensor(int64)": ("long", np.int64),
    "tensor(int32)": ("integer", np.int32),
    "tensor(bool)": ("boolean", np.bool_),
    "tensor(string)": ("string", object),
}


class OnnxRuntime:
    """An onnxruntime session; columns feed named inputs, or one 2-D input positionally."""

    def __init__(self, session: Any, classes: list[Any] | None = None) -> None:
        self.session = session
        self.classes = classes  # the original's labels, when this is a compiled version
        self.inputs = session.get_inputs()
        self.output_names = [o.name for o in session.get_outputs()]
        for i in self.inputs:
            if i.type not in _ONNX_TYPES:
                raise InvalidArtifact(f"ONNX input {i.name!r} has unsupported type {i.type}.")
        self._stacked = (
            len(self.inputs) == 1
            and len(self.inputs[0].shape) == 2
            and (isinstance(self.inputs[0].shape[1], int) and self.inputs[0].shape[1] > 1)
        )
        self.info = RuntimeInfo(
            inputs=self._columns(),
            outputs=["predictions"] + (["probabilities"] if len(self.output_names) > 1 else []),
            framework=_framework(),
            platform="onnxruntime_onnx",
        )

    @classmethod
    def from_file(cls, path: Path, classes: list[Any] | None = None) -> OnnxRuntime:
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # Serving runs many small requests in parallel: one thread per call is faster.
            options.intra_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise InvalidArtifact(f"Could not load {path.name} as ONNX: {exc}") from exc
        return cls(session, classes)

    def _columns(self) -> list[ColumnSpec]:
        if self._stacked:
            i = self.inputs[0]
            kind = _ONNX_TYPES[i.type][0]
            return [ColumnSpec(f"{i.name}_{k}", kind) for k in range(i.shape[1])]
        return [ColumnSpec(i.name, _ONNX_TYPES[i.type][0]) for i in self.inputs]

    def predict(self, frame: Frame) -> Outputs:
        arrays = list(frame.columns.values())
        if self._stacked:
            dtype = _ONNX_TYPES[self.inputs[0].type][1]
            feeds: dict[str, np.ndarray] = {
                self.inputs[0].name: np.column_stack(arrays).astype(dtype)
            }
        else:
            # By name when the inputs are named as the columns (a compiled version), else
            # in signature order.
            named = all(i.name in frame.columns for i in self.inputs)
            feeds = {
                i.name: a.astype(_ONNX_TYPES[i.type][1]).reshape(
                    -1, *([1] if len(i.shape) == 2 else [])
                )
                for i, a in zip(
                    self.inputs,
                    [frame.columns[i.name] for i in self.inputs] if named else arrays,
                    strict=True,
                )
            }
        results = self.session.run(self.output_names, feeds)
        labels = np.asarray(results[0]).reshape(frame.n_rows, -1)
        predictions = plain_list(labels[:, 0] if labels.shape[1] == 1 else labels)
        if len(results) < 2:
            return Outputs(predictions)
        return _with_probabilities(predictions, results[1], frame.n_rows, self.classes)


def _with_probabilities(
    predictions: list[Any], raw: Any, n_rows: int, classes: list[Any] | None = None
) -> Outputs:
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):  # skl2onnx ZipMap
        keys = list(raw[0].keys())
        proba = np.array([[row[c] for c in keys] for row in raw], dtype=np.float64)
        return Outputs(predictions, proba, plain_list(keys))
    proba = np.asarray(raw, dtype=np.float64).reshape(n_rows, -1)
    if classes is None or len(classes) != proba.shape[1]:
        classes = list(range(proba.shape[1]))
    return Outputs(predictions, proba, classes)


def _framework() -> dict[str, str]:
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
