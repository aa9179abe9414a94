"""Synthetic models with known effects: fitted on numpy data in a second, saved as joblib."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression

FEATURES = ["x1", "x2"]


def inputs(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)


def concept(frame: pd.DataFrame, drifted: bool = False) -> np.ndarray:
    """The true label: x1 + x2 > 0; after concept drift, x1 - x2 > 0 (inputs unchanged)."""
    sign = -1 if drifted else 1
    return np.asarray((frame["x1"] + sign * frame["x2"] > 0).astype(int))


def fit_classifier(folder: Path, name: str = "clf", flip: float = 0.0, seed: int = 0) -> Path:
    """A logistic regression of the concept; the labels of the `flip` share of training rows
    with the largest x2 flipped: a systematic error, so the version is truly worse."""
    frame = inputs(500, seed)
    y = concept(frame)
    flipped = frame["x2"].to_numpy() > np.quantile(frame["x2"], 1 - flip) if flip else False
    noisy = np.where(flipped, 1 - y, y)
    model = LogisticRegression().fit(frame, noisy)
    return save(folder, name, model, frame.assign(y=noisy))


def fit_regressor(folder: Path, name: str = "reg", shift: float = 0.0, seed: int = 0) -> Path:
    """y = 3 x1 - 2 x2 (+ `shift` on every answer, a known bias)."""
    frame = inputs(500, seed)
    y = 3 * frame["x1"] - 2 * frame["x2"] + shift
    model = LinearRegression().fit(frame, y)
    return save(folder, name, model, frame.assign(y=y))


def save(folder: Path, name: str, model: object, training: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.joblib"
    joblib.dump(model, path)
    training.to_csv(folder / f"{name}.csv", index=False)
    return path


def training_of(path: Path) -> Path:
    return path.with_suffix(".csv")
