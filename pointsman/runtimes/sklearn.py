"""scikit-learn estimators and pipelines, from joblib/pickle or skops files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pointsman.errors import InvalidArtifact, UnsafeArtifact
from pointsman.runtimes.base import RuntimeInfo
from pointsman.types import Frame, Outputs, plain_list

# Final estimators whose predict() is exactly classes_[argmax(predict_proba)]: for these one
# predict_proba call gives both answers, halving the model time. Others (SVC, tuned
# thresholds, ...) may disagree, so they get both calls.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "KNeighborsClassifier",
        "GaussianNB",
        "MultinomialNB",
        "BernoulliNB",
        "MLPClassifier",
    }
)


class SklearnRuntime:
    """A fitted scikit-learn estimator (or pipeline)."""

    def __init__(self, estimator: Any, platform: str) -> None:
        if not hasattr(estimator, "predict"):
            raise InvalidArtifact(
                f"The artifact holds a {type(estimator).__name__}, which has no predict(); "
                "save the fitted estimator or pipeline itself."
            )
        self.estimator = estimator
        self._predict = estimator.predict
        self._proba = getattr(estimator, "predict_proba", None)
        classes = getattr(estimator, "classes_", None)
        self.classes = None if classes is None or self._proba is None else plain_list(classes)
        self._classes_array = None if classes is None else np.asarray(classes)
        self._argmax = _final_name(estimator) in _ARGMAX_CLASSIFIERS
        names = getattr(estimator, "feature_names_in_", None)
        self.uses_frame = names is not None  # fitted on a DataFrame: given one
        self.info = RuntimeInfo(
            outputs=["predictions"] + (["probabilities"] if self.classes else []),
            classes=self.classes,
            framework=_framework(),
            platform=platform,
        )

    @classmethod
    def from_file(cls, path: Path, fmt: str, trusted: tuple[str, ...] = ()) -> SklearnRuntime:
        """Load a joblib/pickle file (executes code: trusted artifacts only) or a skops file
        (only types skops trusts, plus those an admin listed in `trusted`)."""
        if fmt == "skops":
            check_skops_types(path, trusted)
        try:
            if fmt == "skops":
                import skops.io as sio

                estimator = sio.load(path, trusted=list(trusted))
            else:
                import joblib

                estimator = joblib.load(path)
        except Exception as exc:
            raise InvalidArtifact(
                f"Could not load {path.name} as a scikit-learn model: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(estimator, "sklearn_" + ("skops" if fmt == "skops" else "joblib"))

    def predict(self, frame: Frame) -> Outputs:
        labels, proba = self._answer(frame)
        if proba is None:
            return Outputs(plain_list(labels))
        return Outputs(plain_list(labels), proba, self.classes)

    def predict_arrays(self, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities left as arrays: a batch job writes them to Arrow without
        a Python value per row, which `predict` makes for JSON."""
        labels, proba = self._answer(frame)
        return np.asarray(labels), proba

    def _answer(self, frame: Frame) -> tuple[Any, np.ndarray | None]:
        x = self._input(frame)
        if self.classes is None or self._proba is None:
            return self._predict(x), None
        proba = np.asarray(self._proba(x), dtype=np.float64)
        if self._argmax and self._classes_array is not None:
            return self._classes_array[proba.argmax(axis=1)], proba
        return self._predict(x), proba

    def _input(self, frame: Frame) -> Any:
        if self.uses_frame:
            return pd.DataFrame(frame.columns, copy=False)
        return np.column_stack(list(frame.columns.values()))


def check_skops_types(path: Path, trusted: tuple[str, ...]) -> None:
    """Refuse a skops file holding types neither skops nor the admin trusts (naming them)."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise InvalidArtifact(f"{path.name} is not a readable skops file: {exc}") from exc
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        options = " ".join(f"--trust {t}" for t in refused)
        raise UnsafeArtifact(
            f"{path.name} holds types skops does not trust by default, and loading them may "
            f"run their code: {', '.join(refused)}. If you trust them, register it again with "
            f"{options}."
        )


def _final_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return _final_name(steps[-1][1])
    return type(estimator).__name__


def _framework() -> dict[str, str]:
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__}
