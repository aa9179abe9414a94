"""Scoring one chunk: signature, profile and policy as a request gets them, then the model.

Runs wherever a chunk runs (a local worker process, a Dask worker): it holds the loaded
version and gives back two Arrow tables, the output rows and the rejected ones.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pointsman.batch.categories import categorical_inputs
from pointsman.batch.frames import check_chunk, subset
from pointsman.registry import VersionRecord
from pointsman.runtimes import Runtime
from pointsman.runtimes.sklearn import SklearnRuntime
from pointsman.types import Finding, Frame, Outputs, plain_list
from pointsman.validation.checks import ProfileChecks
from pointsman.validation.policy import ValidationPolicy

ROW = "row"  # the input row number (from 0, across every file of the input)
OUTPUT_COLUMNS = (ROW, "prediction", "version", "status", "job_id")  # and p_<class>


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk gave: its counts, and its time in the worker."""

    chunk: int
    rows: int
    rejected: int
    flagged: int
    failed: int  # rows the model raised on (they are in the rejects, with what it raised)
    seconds: float
    record: dict[str, Any] | None = None  # with --log: the chunk's prediction record


@dataclass(frozen=True)
class Answers:
    """A chunk's model outputs: labels as the runtime's numpy array where it gives one
    (`predict_arrays`), else its list; probabilities with their classes, or None."""

    labels: Any
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None

    def outputs(self) -> Outputs:
        """As a request's Outputs (Python values: what the prediction log stores)."""
        return Outputs(plain_list(self.labels), self.probabilities, self.classes)


@dataclass(frozen=True)
class Scored:
    """A chunk's output and rejects tables (either may have no rows) and its counts."""

    output: pa.Table
    rejects: pa.Table
    result: ChunkResult


class Scorer:
    """A loaded version under the job's validation policy; scores chunks."""

    def __init__(
        self,
        version: VersionRecord,
        runtime: Runtime | None,
        policy: ValidationPolicy,
        keep: list[str],
        job_id: str,
        text_source: bool,
        log_rows: bool = False,
    ) -> None:
        self.log_rows = log_rows
        self.version = version
        self.runtime = runtime  # None: a dry run, validation only
        self.policy = policy
        self.keep = keep
        self.job_id = job_id
        self.text_source = text_source
        self.checks = ProfileChecks.build(version.signature, version.profile, policy.tolerance)
        # Arrow-backed text only where it goes into a DataFrame (other runtimes take numpy).
        self.arrow_strings = runtime is None or (
            isinstance(runtime, SklearnRuntime) and runtime.uses_frame
        )
        text = [s.name for s in version.signature.inputs if s.type == "string"]
        self.categorical = categorical_inputs(runtime, text)

    def score(self, chunk: int, first_row: int, table: pa.Table) -> Scored:
        """The chunk through every check and (unless a dry run) the model."""
        start = time.perf_counter()
        checked = check_chunk(
            self.version.signature, table, self.text_source, self.arrow_strings, self.categorical
        )
        refused = checked.refused
        frame, rows = checked.frame, checked.rows
        flagged: set[int] = set()
        findings = list(frame.findings)
        if self.policy.checks_profile or findings:
            if self.policy.checks_profile:
                findings += self.checks.check(frame, checked.dictionaries)
            refused_rows, flagged_rows = self._judge(findings, rows, refused)
            flagged = flagged_rows - refused_rows
            if refused_rows:
                keep = np.flatnonzero(~np.isin(rows, _array(refused_rows)))
                frame, rows = subset(frame, keep), rows[keep]
        outputs: Answers | None = None
        record: dict[str, Any] | None = None
        failed: dict[int, list[Finding]] = {}
        if self.runtime is not None and frame.n_rows:
            model_start = time.perf_counter()
            outputs, ok = _predict(self.runtime, frame, np.arange(frame.n_rows), failed)
            model_s = time.perf_counter() - model_start
            failed = {int(rows[i]): f for i, f in failed.items()}
            rows = rows[ok]
            if self.log_rows and outputs is not None:
                answered = subset(frame, ok)
                record = self._record(chunk, first_row + rows, answered, outputs, model_s)
        output = self._output(table, first_row, rows, outputs, flagged)
        rejects = self._rejects(table, first_row, {**refused, **failed})
        result = ChunkResult(
            chunk,
            table.num_rows,
            len(refused),
            int(np.isin(rows, _array(flagged)).sum()) if flagged else 0,
            len(failed),
            time.perf_counter() - start,
            record,
        )
        return Scored(output, rejects, result)

    def _record(
        self, chunk: int, rows: np.ndarray, frame: Frame, outputs: Answers, model_s: float
    ) -> dict[str, Any]:
        """The chunk's answered rows as one prediction record (inputs redacted where it is
        spooled); its request id is the job's and the chunk's, so a resumed job's records are
        stored once (the log is idempotent by request id, role and version)."""
        from pointsman.logstore.record import build_record, columns_of  # with --log only

        return build_record(
            request_id=f"{self.job_id}-{chunk:06d}",
            role="pinned",
            model=self.version.model,
            version=self.version.number,
            frame=frame,
            inputs=columns_of(frame),
            outputs=outputs.outputs(),
            latency_s=model_s,
            model_s=model_s,
            client=f"batch:{self.job_id}",
            extra={"batch_job": self.job_id, "chunk": chunk, "rows": rows.tolist()},
        )

    def _judge(
        self, findings: list[Finding], rows: np.ndarray, refused: dict[int, list[Finding]]
    ) -> tuple[set[int], set[int]]:
        """Chunk rows the policy refuses (their findings added to `refused`) and flags."""
        refusing: set[int] = set()
        flagging: set[int] = set()
        for f in findings:
            action = self.policy.action(f.feature, f.rule)
            row = int(rows[f.row])
            if action == "reject":
                refusing.add(row)
                refused.setdefault(row, []).append(f)
            elif action == "flag":
                flagging.add(row)
        return refusing, flagging

    def _output(
        self,
        table: pa.Table,
        first: int,
        rows: np.ndarray,
        outputs: Answers | None,
        flagged: set[int],
    ) -> pa.Table:
        taken = pa.array(rows, type=pa.int64())
        columns: dict[str, Any] = {ROW: pc_add(taken, first)}
        for name in self.keep:
            columns[name] = table.column(name).take(taken)
        if outputs is not None:
            columns["prediction"] = arrow_labels(outputs.labels)
            if outputs.probabilities is not None:
                # One copy with each class's probabilities contiguous, then no copy a class.
                by_class = np.ascontiguousarray(outputs.probabilities.T)
                for k, label in enumerate(outputs.classes or []):
                    columns[f"p_{label}"] = pa.array(by_class[k])
        # The job's constant columns (version, job id, an all-"ok" status) are added when the
        # output is assembled (`sinks.CONSTANT_COLUMNS`): not written and read back a chunk.
        if flagged:
            is_flagged = np.isin(rows, _array(flagged))
            columns["status"] = pc.if_else(pa.array(is_flagged), "flagged", "ok")
        return pa.table(columns)

    def _rejects(self, table: pa.Table, first: int, refused: dict[int, list[Finding]]) -> pa.Table:
        rows = sorted(refused)
        taken = pa.array(rows, type=pa.int64())
        columns: dict[str, Any] = {ROW: pc_add(taken, first)}
        for name in self.keep:
            columns[name] = table.column(name).take(taken)
        texts = [
            orjson.dumps([{**f.to_json(), "row": first + r} for f in refused[r]]).decode()
            for r in rows
        ]
        columns["findings"] = pa.array(texts, type=pa.string())
        return pa.table(columns)  # version and job id added at assembly, as the output's


def _array(rows: set[int]) -> np.ndarray:
    return np.fromiter(rows, dtype=np.int64, count=len(rows))


def arrow_labels(labels: Any) -> pa.Array:
    """Predictions as an Arrow column of the type their Python values would give (integers
    as int64, floats as double, NaN as null), converted in C from the model's array."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1:
        kind = labels.dtype.kind
        if kind in "iu" and (kind == "i" or labels.dtype.itemsize < 8):
            return pa.array(labels.astype(np.int64, copy=False))
        if kind == "f":
            return pa.array(labels.astype(np.float64, copy=False), from_pandas=True)
        if kind in "bU":
            return pa.array(labels)
        if kind == "O":
            try:
                return pa.array(labels, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass  # mixed values: as the request path reads them
    elif isinstance(labels, list) and labels and _plain(labels):
        return pa.array(labels)  # a runtime's list of Python values (ONNX's predict): as is
    return pa.array(plain_list(labels))


def _plain(labels: list[Any]) -> bool:
    """Whether every label is a Python int (not a bool) or every one a str: what `plain_list`
    gives back unchanged, so it need not be called on each."""
    kind = type(labels[0])
    return kind in (int, str) and all(type(v) is kind for v in labels)


def pc_add(rows: pa.Array, first: int) -> pa.Array:
    """Chunk rows as input rows."""
    return pa.array(rows.to_numpy() + first, type=pa.int64())


def _answers(runtime: Runtime, frame: Frame) -> Answers:
    arrays = getattr(runtime, "predict_arrays", None)
    if arrays is not None:  # scikit-learn: labels stay numpy to the output's Arrow column
        labels, probabilities = arrays(frame)
        classes = None if probabilities is None else runtime.info.classes
        return Answers(labels, probabilities, classes)
    out = runtime.predict(frame)
    return Answers(out.predictions, out.probabilities, out.classes)


def _predict(
    runtime: Runtime, frame: Frame, rows: np.ndarray, failed: dict[int, list[Finding]]
) -> tuple[Answers | None, np.ndarray]:
    """Answers of the rows that the model answers, halving a failing batch to find the rows
    it raises on (noted in `failed`); and which rows answered."""
    try:
        return _answers(runtime, frame), rows
    except Exception as exc:
        if frame.n_rows == 1:
            what = f"an input the model answers (it raised {type(exc).__name__}: {exc})"[:300]
            failed[int(rows[0])] = [Finding(0, "(row)", None, "model_error", what)]
            return None, rows[:0]
    half = frame.n_rows // 2
    parts = [np.arange(half), np.arange(half, frame.n_rows)]
    answered: list[tuple[Answers, np.ndarray]] = []
    for part in parts:
        out, ok = _predict(runtime, subset(frame, part), rows[part], failed)
        if out is not None:
            answered.append((out, ok))
    if not answered:
        return None, rows[:0]
    return _joined([o for o, _ in answered]), np.concatenate([ok for _, ok in answered])


def _joined(outputs: list[Answers]) -> Answers:
    labels: Any
    if all(isinstance(o.labels, np.ndarray) and o.labels.ndim == 1 for o in outputs):
        labels = np.concatenate([o.labels for o in outputs])
    else:
        labels = [p for o in outputs for p in plain_list(o.labels)]
    probabilities = None
    if all(o.probabilities is not None for o in outputs):
        probabilities = np.vstack([o.probabilities for o in outputs])  # type: ignore[misc]
    return Answers(labels, probabilities, outputs[0].classes)


def write_part(table: pa.Table, path: Path) -> None:
    """A part file (Arrow IPC: read back once, so not worth Parquet's encoding), whole or not
    at all: written aside, then renamed over any old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(partial, path)
