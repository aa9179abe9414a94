"""Signature inference and reference profiles from a training sample.

numpy and pandas are imported where a function needs them, not with the module: the registry
(and so every CLI command that opens a project) imports this module, and most never read a sample.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointsman.errors import InvalidArtifact
from pointsman.types import ColumnSpec

if TYPE_CHECKING:
    import pandas as pd

N_BINS = 10
N_QUANTILES = 101
MAX_CATEGORIES = 100_000


def read_training_data(path: Path) -> pd.DataFrame:
    """A CSV or Parquet training sample as a DataFrame."""
    import pandas as pd

    if not path.exists():
        raise InvalidArtifact(f"Training data {path} does not exist.")
    try:
        if is_parquet(path):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:
        raise InvalidArtifact(
            f"Could not read training data {path.name} ({exc}); give a CSV with a header row "
            "or a Parquet file."
        ) from exc


def is_parquet(path: Path) -> bool:
    """Parquet by its name; anything else is read as CSV (text, where "41" is a number)."""
    return path.suffix.lower() in (".parquet", ".pq")


def fingerprint(path: Path, frame: pd.DataFrame) -> dict[str, Any]:
    """The training data's identity: file sha256, rows and columns."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "file": path.name,
        "sha256": digest,
        "rows": len(frame),
        "columns": [str(c) for c in frame.columns],
    }


def column_type(series: pd.Series) -> str:
    """The signature type of a training column."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    return "string"


def infer_columns(features: pd.DataFrame) -> list[ColumnSpec]:
    """Signature columns from the training features, nullable where nulls occur."""
    return [
        ColumnSpec(str(name), column_type(features[name]), bool(features[name].isna().any()))
        for name in features.columns
    ]


def build_profile(features: pd.DataFrame, columns: list[ColumnSpec]) -> dict[str, Any]:
    """Per feature statistics of the training sample (basis of validation and drift)."""
    out: dict[str, Any] = {"rows": len(features), "features": {}}
    for spec in columns:
        if spec.name not in features.columns:
            continue
        series = features[spec.name]
        if spec.type in ("double", "float", "long", "integer"):
            out["features"][spec.name] = numeric_profile(series)
        else:
            out["features"][spec.name] = categorical_profile(series)
    return out


def numeric_profile(series: pd.Series) -> dict[str, Any]:
    """Range, moments, null rate and quantile bins of a numeric feature."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    null_rate = float(np.mean(np.isnan(values))) if len(values) else 0.0
    if len(finite) == 0:
        return {"kind": "numeric", "count": 0, "null_rate": null_rate}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)))
    counts, _ = (
        np.histogram(finite, bins=edges) if len(edges) > 1 else (np.array([len(finite)]), None)
    )
    return {
        "kind": "numeric",
        "count": len(finite),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "null_rate": null_rate,
        "bin_edges": [float(e) for e in edges],
        "bin_fractions": [float(c) / len(finite) for c in counts],
        # The percentiles: an empirical CDF of the training data for Kolmogorov-Smirnov.
        "quantiles": [float(q) for q in np.quantile(finite, np.linspace(0, 1, N_QUANTILES))],
    }


def categorical_profile(series: pd.Series) -> dict[str, Any]:
    """Category set with frequencies and null rate of a categorical feature."""
    present = series.dropna()
    counts = present.astype(str).value_counts()
    total = max(len(present), 1)
    top = counts.head(MAX_CATEGORIES)
    return {
        "kind": "categorical",
        "count": len(present),
        "null_rate": float(series.isna().mean()) if len(series) else 0.0,
        "n_categories": len(counts),
        "categories": {str(k): float(v) / total for k, v in top.items()},
    }


def output_profile(predictions: list[Any]) -> dict[str, Any]:
    """Distribution of the model's outputs on the training sample (for prediction drift)."""
    import pandas as pd

    values = pd.Series(predictions)
    if pd.api.types.is_float_dtype(values.dtype):
        return {"predictions": numeric_profile(values)}
    return {"predictions": categorical_profile(values)}


def to_records(features: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The first rows as JSON-able records (NaN → null): the version's input example."""
    import numpy as np

    head = features.head(limit).astype(object).where(features.head(limit).notna(), None)
    return [
        {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in head.to_dict(orient="records")
    ]
