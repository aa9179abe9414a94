"""Plain data that crosses components: signatures, frames, outputs."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

# numpy is not imported here at run time: every component imports this module, and the CLI's
# read-only commands (`pointsman models`, `pointsman route MODEL`) must start without numpy.
if TYPE_CHECKING:
    import numpy as np

# Which part a version played in answering a request: the routed arm, the fallback that
# answered for it, a version the caller pinned, or a shadow copy run after the answer.
Role = Literal["primary", "fallback", "pinned", "shadow"]

# Why a routed arm did not answer (the fallback's reason, and a metric label).
FailureReason = Literal["timeout", "not_ready", "error", "circuit_open", "crashed", "limit"]

# Column types, named as MLflow names them so its signatures map one to one.
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
COLUMN_TYPES = NUMERIC_TYPES | {"boolean", "string"}

# Open Inference Protocol datatype of each column type.
V2_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, type and whether training data had nulls in it."""

    name: str
    type: str
    nullable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(data["name"], data["type"], bool(data.get("nullable", False)))


@dataclass(frozen=True)
class Signature:
    """The input columns a version expects and the outputs it gives."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[str, ...] = ("predictions",)
    classes: tuple[Any, ...] | None = None  # labels, when the model gives probabilities
    # Fields a request may carry that are not model inputs (the route's sticky key): taken
    # aside into Frame.extras instead of being refused as unexpected. Never stored.
    passthrough: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @property
    def has_probabilities(self) -> bool:
        return self.classes is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_json() for c in self.inputs],
            "outputs": list(self.outputs),
            "classes": None if self.classes is None else list(self.classes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        classes = data.get("classes")
        return cls(
            inputs=tuple(ColumnSpec.from_json(c) for c in data["inputs"]),
            outputs=tuple(data.get("outputs") or ("predictions",)),
            classes=None if classes is None else tuple(classes),
        )


@dataclass(frozen=True)
class Finding:
    """One validation finding: which row and feature, the value, the rule and what is allowed."""

    row: int
    feature: str
    value: Any
    rule: str
    allowed: str
    hint: str = ""  # e.g. the category a near miss probably meant

    def to_json(self) -> dict[str, Any]:
        out = {
            "row": self.row,
            "feature": self.feature,
            "value": _shown(self.value),
            "rule": self.rule,
            "allowed": self.allowed,
        }
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass
class Frame:
    """A batch of rows held as one numpy array per column, in signature order."""

    columns: dict[str, np.ndarray]
    n_rows: int
    extras: dict[str, list[Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)  # values coerced while decoding

    def row(self, i: int) -> dict[str, Any]:
        """Row `i` as plain Python values (for logs and examples)."""
        return {name: _plain(col[i]) for name, col in self.columns.items()}

    def to_records(self) -> list[dict[str, Any]]:
        return [self.row(i) for i in range(self.n_rows)]


@dataclass
class Outputs:
    """What a runtime returns for a frame: one prediction per row, and maybe probabilities."""

    predictions: list[Any]
    probabilities: np.ndarray | None = None  # shape (n_rows, len(classes))
    classes: list[Any] | None = None
    runtime: str | None = None  # which runtime answered: original | compiled (from runners)

    def probability_records(self) -> list[dict[str, float]] | None:
        """Probabilities as one {label: p} object per row."""
        if self.probabilities is None or self.classes is None:
            return None
        labels = [str(c) for c in self.classes]
        return [dict(zip(labels, map(float, row), strict=True)) for row in self.probabilities]


@dataclass(frozen=True)
class Fallback:
    """The arm that failed and why, when a fallback version answered instead."""

    from_version: int
    reason: FailureReason
    detail: str  # for people: "timed out after 200 ms", "raised ValueError", …

    def to_json(self) -> dict[str, Any]:
        return {"from_version": self.from_version, "reason": self.reason, "detail": self.detail}


@dataclass
class Prediction:
    """The answer to one request, before a protocol encodes it."""

    model: str
    version: int
    request_id: str
    outputs: Outputs
    latency_s: float = 0.0
    route_revision: int | None = None  # None when the caller pinned a version
    fallback: Fallback | None = None  # set when a fallback version answered
    findings: list[dict[str, Any]] = field(default_factory=list)  # validation, JSON-able
    client: str | None = None  # the API key's name, once auth knows the caller

    @property
    def role(self) -> Role:
        if self.fallback is not None:
            return "fallback"
        return "pinned" if self.route_revision is None else "primary"


@dataclass
class Outcome:
    """What one request did, filled in by the pipeline; read by the log and the metrics.

    The caller creates it (with the protocol) and keeps it: whatever happens, even an error,
    it says which model, version and role were involved, on which frame and for how long.
    """

    protocol: str
    model: str = ""
    version: int | None = None
    role: Role | None = None
    route_revision: int | None = None
    frame: Frame | None = None  # the frame the answering version ran (or was refused on)
    model_s: float | None = None
    rows: int | None = None
    latency_s: float | None = None  # the pipeline's time, decoding for the arms included
    request_id: str = ""
    client: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def _shown(value: Any) -> Any:
    """A finding's value for JSON: infinities as text, since JSON has no number for them."""
    value = _plain(value)
    if isinstance(value, float) and value in (math.inf, -math.inf):
        return str(value)
    return value


_JSON_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    type(None): "null",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _plain(value: Any) -> Any:
    """A numpy scalar as the JSON-able Python value; NaN as None."""
    return _plain_given(value, _numpy_scalar())


def _numpy_scalar() -> Any:
    """numpy's scalar base class, or () when numpy is not loaded (then no value is one)."""
    np = sys.modules.get("numpy")  # cheaper than an import, and keeps numpy off the CLI's path
    return np.generic if np is not None else ()


def _plain_given(value: Any, numpy_scalar: Any) -> Any:
    if isinstance(value, numpy_scalar):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def plain_list(values: Any) -> list[Any]:
    """A numpy array (or list) of labels as JSON-able Python values."""
    np = sys.modules.get("numpy")  # as in _numpy_scalar: no array without numpy loaded
    if np is None:
        return [_plain_given(v, ()) for v in values]
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iub":  # no NaN possible: numpy's own conversion, in C
            return list(values.tolist())
        if values.dtype.kind == "f":
            if not np.isnan(values).any():
                return list(values.tolist())
            return [_plain_given(v, np.generic) for v in values.tolist()]
    return [_plain_given(v, np.generic) for v in values]


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp as aware UTC (SQLite hands back naive ones)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
