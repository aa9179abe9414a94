"""Synthetic churn data and two model versions trained on it (seeded: same bytes every run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "age"]
CATEGORICAL = ["plan", "contract", "region"]
TARGET = "churned"


def make_data(rows: int, seed: int) -> pd.DataFrame:
    """Customers whose churn depends on tenure, charges, support calls, plan and contract."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.35, 0.15])
    contract = rng.choice(["monthly", "annual", "two_year"], rows, p=[0.55, 0.3, 0.15])
    region = rng.choice(["north", "south", "east", "west"], rows)
    tenure = rng.integers(1, 73, rows)
    base = {"basic": 25.0, "standard": 55.0, "premium": 95.0}
    charges = np.round(np.array([base[p] for p in plan]) + rng.normal(0, 8, rows), 2)
    calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 80, rows)
    logit = (
        -0.9
        - 0.045 * tenure
        + 0.018 * charges
        + 0.45 * calls
        + np.select([contract == "annual", contract == "two_year"], [-1.0, -2.0], 0.0)
        + np.where(plan == "premium", -0.4, 0.0)
        # An interaction a linear model cannot see and trees can.
        + np.where((calls >= 3) & (tenure < 12), 1.5, 0.0)
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "age": age,
            "plan": plan,
            "contract": contract,
            "region": region,
            TARGET: churned,
        }
    )


@dataclass
class Trained:
    """A saved model file with what to register it with."""

    path: Path
    training_data: Path
    params: dict[str, str]
    metrics: dict[str, float]
    note: str


def _preprocess(scale: bool) -> ColumnTransformer:
    numeric = StandardScaler() if scale else "passthrough"
    return ColumnTransformer(
        [
            ("num", numeric, NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )


def train_versions(folder: Path) -> list[Trained]:
    """Train v1 (logistic regression) and v2 (gradient boosting) and save them in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    train = make_data(4000, seed=7)
    holdout = make_data(2000, seed=8)
    data_path = folder / "churn_train.csv"
    train.to_csv(data_path, index=False)
    x, y = train.drop(columns=[TARGET]), train[TARGET]
    hx, hy = holdout.drop(columns=[TARGET]), holdout[TARGET]
    candidates = [
        (
            "churn_v1_logreg.joblib",
            Pipeline(
                [("prep", _preprocess(True)), ("clf", LogisticRegression(C=1.0, max_iter=500))]
            ),
            {"algorithm": "logistic_regression", "C": "1.0"},
            "baseline: logistic regression on scaled numerics + one-hot categoricals",
        ),
        (
            "churn_v2_gbm.joblib",
            Pipeline(
                [
                    ("prep", _preprocess(False)),
                    (
                        "clf",
                        GradientBoostingClassifier(n_estimators=120, max_depth=3, random_state=0),
                    ),
                ]
            ),
            {"algorithm": "gradient_boosting", "n_estimators": "120", "max_depth": "3"},
            "challenger: gradient boosting, sees the calls x tenure interaction",
        ),
    ]
    out = []
    for name, pipeline, params, note in candidates:
        pipeline.fit(x, y)
        proba = pipeline.predict_proba(hx)[:, 1]
        metrics = {
            "auc": round(float(roc_auc_score(hy, proba)), 4),
            "accuracy": round(float(accuracy_score(hy, pipeline.predict(hx))), 4),
        }
        path = folder / name
        joblib.dump(pipeline, path)
        out.append(Trained(path, data_path, params, metrics, note))
    return out
