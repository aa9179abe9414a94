"""A scikit-learn version compiled to ONNX (skl2onnx), and the check that it answers alike.

The compiled artifact is used only when it agreed with the original on the whole reference
sample: every label identical and every probability within `TOLERANCE`. Conversion runs
where register's smoke test runs (a child under the model's runner limits): it executes
the estimator's code, like loading it does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointsman.runtimes.base import Runtime
from pointsman.types import ColumnSpec, Frame

TOLERANCE = 1e-5  # largest probability difference the compiled runtime may show
COMPILED_FORMATS = ("sklearn", "skops")


class NotConvertible(Exception):
    """skl2onnx cannot convert this estimator (or is not installed): the reason, in words."""


@dataclass
class Agreement:
    """How the compiled runtime answered the reference sample, against the original."""

    rows: int
    label_agreement: float  # share of rows with the same label (1.0: all)
    max_probability_diff: float | None  # over every row and class; None without probabilities

    @property
    def agreed(self) -> bool:
        diff = self.max_probability_diff
        return self.label_agreement == 1.0 and (diff is None or diff <= TOLERANCE)

    def reason(self) -> str:
        """Why the compiled runtime is not used ("" when it agreed)."""
        if self.agreed:
            return ""
        parts = []
        if self.label_agreement < 1.0:
            differ = round((1.0 - self.label_agreement) * self.rows)
            parts.append(f"{differ} of {self.rows} labels differ")
        diff = self.max_probability_diff
        if diff is not None and diff > TOLERANCE:
            parts.append(f"probabilities differ by up to {diff:.3g} (tolerance {TOLERANCE:g})")
        return "the compiled model disagrees with the original on the reference sample: " + (
            "; ".join(parts)
        )


# Numbers as doubles first (what scikit-learn computes in); float32 when the double graph
# cannot run (skl2onnx's tree ensembles, for one), kept only if it still agrees.
PRECISIONS = ("double", "float")


def onnx_inputs(columns: list[ColumnSpec], precision: str = "double") -> list[tuple[str, Any]]:
    """One named [N, 1] input per signature column: numbers as doubles (or floats),
    strings for categories, booleans as they are."""
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )

    number = DoubleTensorType if precision == "double" else FloatTensorType
    kinds = {"string": StringTensorType, "boolean": BooleanTensorType}
    return [(c.name, kinds.get(c.type, number)([None, 1])) for c in columns]


def convert(
    estimator: Any, columns: list[ColumnSpec], out: Path, precision: str = "double"
) -> None:
    """Write `estimator` as ONNX to `out`; NotConvertible says why it cannot be."""
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError as exc:
        raise NotConvertible(f"skl2onnx is not installed ({exc})") from None
    number = DoubleTensorType if precision == "double" else FloatTensorType
    stacked: list[tuple[str, Any]] = [("input", number([None, len(columns)]))]
    numeric = all(c.type not in ("string", "boolean") for c in columns)
    if getattr(estimator, "feature_names_in_", None) is None and len(columns) > 1:
        # Fitted on a bare array (no column names): one stacked input, in signature order.
        candidates = [stacked]
    else:
        # Named inputs for a pipeline that takes columns apart; a bare estimator fitted on
        # a frame of numbers takes them stacked, in the same (signature) order.
        candidates = [onnx_inputs(columns, precision)] + ([stacked] if numeric else [])
    # zipmap off: probabilities as one tensor, not a list of dicts per row.
    options = {"zipmap": False} if hasattr(estimator, "predict_proba") else None
    first: Exception | None = None
    for inputs in candidates:
        try:
            model = to_onnx(
                estimator,
                initial_types=inputs,
                options=options,
                target_opset={"": 17, "ai.onnx.ml": 3},
            )
            break
        except Exception as exc:
            first = first or exc
    else:
        assert first is not None
        words = str(first).strip().splitlines()[0] if str(first).strip() else ""
        raise NotConvertible(f"skl2onnx cannot convert it: {type(first).__name__}: {words}")
    out.write_bytes(model.SerializeToString())


def compare(original: Runtime, compiled: Runtime, frame: Frame) -> Agreement:
    """Both runtimes on the same frame: label agreement and the largest probability gap."""
    want, got = original.predict(frame), compiled.predict(frame)
    same = _same_labels(want.predictions, got.predictions)
    diff = None
    if want.probabilities is not None:
        if got.probabilities is None or got.probabilities.shape != want.probabilities.shape:
            diff = float("inf")
        else:
            diff = float(np.max(np.abs(want.probabilities - got.probabilities), initial=0.0))
    elif _numeric(want.predictions):
        # A regressor: its predictions are the figures to compare, labels are not.
        a = np.asarray(want.predictions, dtype=np.float64)
        b = np.asarray(got.predictions, dtype=np.float64)
        diff = float(np.max(np.abs(a - b), initial=0.0)) if a.shape == b.shape else float("inf")
        same = np.ones(frame.n_rows, dtype=bool) if a.shape == b.shape else same
    rows = frame.n_rows
    agreement = float(same.sum()) / rows if rows else 1.0
    return Agreement(rows, agreement, diff)


def _same_labels(want: list[Any], got: list[Any]) -> np.ndarray:
    if len(want) != len(got):
        return np.zeros(len(want), dtype=bool)
    return np.array([str(a) == str(b) for a, b in zip(want, got, strict=True)], dtype=bool)


def _numeric(values: list[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


@dataclass
class CompileReport:
    """What a compile attempt gave: stored with the version (JSON) and shown by `show`."""

    agreed: bool
    reason: str  # why the version runs the original ("" when the compiled one agreed)
    rows: int = 0
    label_agreement: float | None = None
    max_probability_diff: float | None = None
    tolerance: float = TOLERANCE
    precision: str = ""  # the ONNX graph's numbers: double, or float
    seconds: float = 0.0  # conversion and check, the time it added to register
    converter: str = ""  # skl2onnx version

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compile_checked(
    original: Runtime, estimator: Any, columns: list[ColumnSpec], frame: Frame, out: Path
) -> CompileReport:
    """Convert, load with onnxruntime and compare on `frame`, in doubles then in floats.

    `out` holds the ONNX file of the attempt kept: the first that agreed, else the last
    that ran (stored either way, so the figures shown are those of a real file)."""
    start = time.perf_counter()
    report = CompileReport(False, "")
    out.unlink(missing_ok=True)
    for precision in PRECISIONS:
        staged = out.with_name(f"{precision}.{out.name}")
        attempt = _attempt(original, estimator, columns, frame, staged, precision)
        if attempt.label_agreement is not None and (
            report.label_agreement is None or attempt.agreed
        ):
            staged.replace(out)  # the attempt kept: the first that ran, or one that agreed
            report = attempt
        elif report.label_agreement is None:
            report = attempt  # nothing ran yet: its reason is the best there is
        staged.unlink(missing_ok=True)
        if report.agreed:
            break
    report.seconds = time.perf_counter() - start
    report.converter = _converter_version()
    return report


def _attempt(
    original: Runtime,
    estimator: Any,
    columns: list[ColumnSpec],
    frame: Frame,
    staged: Path,
    precision: str,
) -> CompileReport:
    """One conversion at `precision` into `staged`, loaded and compared."""
    from pointsman.runtimes.onnx import OnnxRuntime

    try:
        convert(estimator, columns, staged, precision)
    except NotConvertible as exc:
        return CompileReport(False, str(exc))
    try:
        compiled = OnnxRuntime.from_file(staged, classes=original.info.classes)
        agreement = compare(original, compiled, frame)
    except Exception as exc:
        words = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        return CompileReport(
            False, f"the compiled model could not answer the reference sample ({words})"
        )
    return CompileReport(
        agreement.agreed,
        agreement.reason(),
        rows=agreement.rows,
        label_agreement=agreement.label_agreement,
        max_probability_diff=agreement.max_probability_diff,
        precision=precision,
    )


def _converter_version() -> str:
    try:
        import skl2onnx
    except ImportError:
        return ""
    return f"skl2onnx {skl2onnx.__version__}"
