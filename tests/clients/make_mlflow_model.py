"""Save iris LogisticRegression models as MLflow folders, with mlflow itself (mlflow venv).

Usage: python make_mlflow_model.py OUT_DIR
Writes OUT_DIR/default (mlflow's default serialization) and OUT_DIR/skops
(serialization_format="skops"), each with a signature and an input example, and prints their
paths. save_model only: no tracking server, no network, nothing written outside OUT_DIR.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

OUT = Path(sys.argv[1]).resolve()
# Before importing mlflow: no telemetry, no tracking store, scratch files inside OUT.
os.environ.update(
    {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_TRACKING_URI": (OUT / "mlruns").as_uri(),
        "MLFLOW_ENV_ROOT": str(OUT / "envs"),
        "TMPDIR": str(OUT / "tmp"),
    }
)
(OUT / "tmp").mkdir(parents=True, exist_ok=True)

import mlflow.sklearn  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> None:
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=COLUMNS)
    model = LogisticRegression(max_iter=500).fit(frame, iris.target)
    example = frame.head(3)
    signature = infer_signature(example, model.predict(example))
    # Explicit requirements: skips mlflow's slow requirement inference (a model-loading subprocess).
    requirements = [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}"]
    for folder, extra in (("default", {}), ("skops", {"serialization_format": "skops"})):
        mlflow.sklearn.save_model(
            model,
            OUT / folder,
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            **extra,
        )
        print(OUT / folder)
    shutil.rmtree(OUT / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
