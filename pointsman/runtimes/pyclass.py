"""A plain Python class with predict (and optionally predict_proba), from a .py file."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pointsman.errors import InvalidArtifact
from pointsman.runtimes.base import RuntimeInfo
from pointsman.types import Frame, Outputs, plain_list


class PythonClassRuntime:
    """An instance of `Class` from the stored module file, called with a pandas DataFrame."""

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "predict", None)):
            raise InvalidArtifact(f"{type(model).__name__} has no predict(self, frame) method.")
        self.model = model
        self._proba = getattr(model, "predict_proba", None)
        classes = getattr(model, "classes_", None) or getattr(model, "classes", None)
        self.classes = None if classes is None else plain_list(list(classes))
        self.info = RuntimeInfo(
            outputs=["predictions"] + (["probabilities"] if self._proba else []),
            classes=self.classes,
            framework={"numpy": np.__version__, "pandas": pd.__version__},
            platform="python_class",
        )

    @classmethod
    def from_file(cls, path: Path, class_name: str) -> PythonClassRuntime:
        """Import `path` under a name unique to its content, then instantiate `class_name`."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        module_name = f"pointsman_model_{digest}"
        try:
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise InvalidArtifact(f"{path} is not an importable Python file.")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            klass = getattr(module, class_name, None)
            if klass is None:
                raise InvalidArtifact(
                    f"{path.name} defines no class {class_name!r}; give FILE.py:ClassName."
                )
            return cls(klass())
        except InvalidArtifact:
            raise
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise InvalidArtifact(
                f"Could not load {path.name}:{class_name}: {type(exc).__name__}: {exc}"
            ) from exc

    def predict(self, frame: Frame) -> Outputs:
        df = pd.DataFrame(frame.columns, copy=False)
        labels = plain_list(np.asarray(self.model.predict(df)).reshape(frame.n_rows, -1)[:, 0])
        if self._proba is None:
            return Outputs(labels)
        raw = self._proba(df)
        if isinstance(raw, pd.DataFrame):
            return Outputs(labels, raw.to_numpy(np.float64), plain_list(list(raw.columns)))
        proba = np.asarray(raw, dtype=np.float64).reshape(frame.n_rows, -1)
        classes = self.classes or list(range(proba.shape[1]))
        return Outputs(labels, proba, classes)
