"""Building a new version from a model file and its training sample."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointsman.errors import InvalidArtifact
from pointsman.registry import lineage, profiles
from pointsman.runtimes import FORMATS, Runtime, detect_format, load_runtime
from pointsman.types import ColumnSpec, Frame, Signature

if TYPE_CHECKING:
    import pandas as pd

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
EXAMPLE_ROWS = 5
_NEUTRAL: dict[str, Any] = {
    "double": 0.0,
    "float": 0.0,
    "long": 0,
    "integer": 0,
    "boolean": False,
    "string": "",
}


@dataclass
class Submission:
    """What a data scientist hands over for one version."""

    model: str
    path: Path
    format: str | None = None
    entrypoint: str | None = None
    training_data: Path | None = None
    target: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""
    user: str = ""
    reason: str = ""  # why it is registered (the console asks): kept in the audit log
    trusted_types: tuple[str, ...] = ()  # skops types the admin accepts (--trust)
    # Lineage the uploading client captured (its git commit), over this process's own.
    client_lineage: dict[str, Any] = field(default_factory=dict)
    compile: bool = True  # compile to ONNX now (else only keep the sample for later)


@dataclass
class Prepared:
    """A submission checked, loaded and described: ready to be stored."""

    format: str
    entrypoint: str | None
    signature: Signature
    profile: dict[str, Any] | None
    lineage: dict[str, Any]
    input_example: list[dict[str, Any]] | None
    # The compile attempt (runtimes/compiled.py's CompileReport as JSON); its files, when
    # any, are in the work folder: COMPILED_FILE and SAMPLE_FILE.
    compiled: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "signature": self.signature.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prepared:
        return cls(**{**data, "signature": Signature.from_json(data["signature"])})


# Where `prepare` runs: in this process, or in a child under a runner's limits. The third
# argument is a work folder the compiled artifact and the reference sample are written to.
Prepare = Callable[[Submission, Path, Path], Prepared]
COMPILED_FILE = "model.onnx"
SAMPLE_FILE = "reference_sample.parquet"
SAMPLE_ROWS = 10_000  # rows of the training data the smoke test, profile outputs and compile use


def prepare_json(sub: Submission, stored_path: Path, workdir: Path) -> dict[str, Any]:
    """`prepare`, as JSON (what a child process sends back)."""
    return prepare(sub, stored_path, workdir).to_json()


def check_model_name(name: str) -> None:
    if not MODEL_NAME.match(name):
        raise InvalidArtifact(
            f"Model name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(up to 128, starting with a letter or digit), so every client can put it in a URL."
        )


def split_entrypoint(spec: str) -> tuple[Path, str | None]:
    """`file.py:Class` or `package.module:Class` → (source file, Class); else a plain path."""
    head, sep, tail = spec.rpartition(":")
    if not (sep and tail.isidentifier() and head) or head.endswith(("/", "\\")):
        return Path(spec), None
    path = Path(head)
    if path.suffix == ".py" or path.exists():
        return path, tail
    # An importable module: store its source file, so the version keeps working (and keeps
    # its sha256) even if the installed module changes later.
    try:
        found = importlib.util.find_spec(head)
    except (ImportError, ValueError):
        found = None
    if found is not None and found.origin and found.origin.endswith(".py"):
        return Path(found.origin), tail
    return path, tail


def prepare(sub: Submission, stored_path: Path, workdir: Path | None = None) -> Prepared:
    """Load the stored artifact, work out signature and profile, smoke-test it, and (with a
    work folder) compile it to ONNX, checked against the original on the reference sample."""
    fmt = sub.format or detect_format(sub.path, sub.entrypoint)
    if fmt not in FORMATS:
        raise InvalidArtifact(f"Unknown format {fmt!r}; known formats: {', '.join(FORMATS)}.")
    if fmt == "python" and not sub.entrypoint:
        raise InvalidArtifact("A Python class model is given as FILE.py:ClassName.")
    trusted = tuple(sorted(set(sub.trusted_types)))
    runtime = load_runtime(fmt, stored_path, sub.entrypoint, trusted)
    features, data_lineage = _training_features(sub)
    columns = _columns(runtime, features)
    profile = None
    example = runtime.info.input_example
    if features is not None:
        profile = profiles.build_profile(features, columns)
        example = profiles.to_records(features[[c.name for c in columns]], EXAMPLE_ROWS)
    if not example:
        # A declared signature without data (bare ONNX): a neutral row still proves it runs.
        example = [{c.name: _NEUTRAL[c.type] for c in columns}]
    classes, outputs_profile, sample = _smoke_test(runtime, columns, example, features)
    compiled = None
    if workdir is not None:
        compiled = compile_version(fmt, runtime, columns, features, sample, workdir, sub.compile)
    if profile is not None and outputs_profile is not None:
        profile["outputs"] = outputs_profile
    env = lineage.capture(runtime.info.framework or {}, Path.cwd())
    env.update(sub.client_lineage)
    env.update(
        {
            "training_data": data_lineage,
            "params": sub.params,
            "metrics": sub.metrics,
            "platform": runtime.info.platform,
            "target": sub.target,
        }
    )
    if trusted:
        env["trusted_types"] = list(trusted)  # enforced at every load
    outputs = tuple(runtime.info.outputs or ["predictions"])
    if classes is not None and "probabilities" not in outputs:
        outputs = (*outputs, "probabilities")
    signature = Signature(tuple(columns), outputs, None if classes is None else tuple(classes))
    return Prepared(fmt, sub.entrypoint, signature, profile, env, example, compiled)


def compile_version(
    fmt: str,
    runtime: Runtime,
    columns: list[ColumnSpec],
    features: pd.DataFrame | None,
    sample: Frame | None,
    workdir: Path,
    compile_now: bool = True,
) -> dict[str, Any]:
    """The compile attempt as JSON; the ONNX file and the sample it was checked on go to
    `workdir`. Never raises for a model that cannot be compiled: the reason is the answer."""
    from pointsman.runtimes.compiled import COMPILED_FORMATS, CompileReport, compile_checked

    if fmt not in COMPILED_FORMATS:
        why = f"only scikit-learn models (sklearn, skops) are compiled; this one is {fmt}"
        return CompileReport(False, why).to_json()
    estimator = getattr(runtime, "estimator", None)
    if features is None or sample is None or estimator is None:
        why = "no training data to check it against: register it with --training-data"
        return CompileReport(False, why).to_json()
    kept = features[[c.name for c in columns]].head(SAMPLE_ROWS)
    kept.to_parquet(workdir / SAMPLE_FILE, index=False)
    if not compile_now:
        why = "not compiled at register (--no-compile): run `pointsman compile`"
        return CompileReport(False, why).to_json()
    report = compile_checked(runtime, estimator, columns, sample, workdir / COMPILED_FILE)
    return report.to_json()


def _training_features(sub: Submission) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    if sub.training_data is None:
        return None, None
    frame = profiles.read_training_data(sub.training_data)
    data_lineage = profiles.fingerprint(sub.training_data, frame)
    if sub.target is not None:
        if sub.target not in frame.columns:
            raise InvalidArtifact(
                f"Target column {sub.target!r} is not in {sub.training_data.name} (columns: "
                f"{', '.join(map(str, frame.columns))})."
            )
        frame = frame.drop(columns=[sub.target])
    if frame.empty:
        raise InvalidArtifact(f"Training data {sub.training_data.name} has no rows or columns.")
    return frame, data_lineage


def _columns(runtime: Runtime, features: pd.DataFrame | None) -> list[ColumnSpec]:
    declared = runtime.info.inputs
    if features is None:
        if declared is None:
            raise InvalidArtifact(
                "This format carries no input signature: give --training-data so the columns "
                "and their types can be read from it."
            )
        return declared
    inferred = profiles.infer_columns(features)
    if declared is None:
        return inferred
    if [c.name for c in declared] == [c.name for c in inferred]:
        return [
            ColumnSpec(d.name, d.type, d.nullable or i.nullable)
            for d, i in zip(declared, inferred, strict=True)
        ]
    if len(declared) == len(inferred) and not set(c.name for c in declared) & set(features.columns):
        # A positional tensor input (e.g. ONNX float_input[N, 4]): the training data names it.
        return [
            ColumnSpec(i.name, d.type, i.nullable) for d, i in zip(declared, inferred, strict=True)
        ]
    missing = [c.name for c in declared if c.name not in features.columns]
    if missing:
        raise InvalidArtifact(
            f"The model's signature needs columns the training data lacks: {', '.join(missing)}."
        )
    by_name = {c.name: c for c in inferred}
    return [ColumnSpec(d.name, d.type, d.nullable or by_name[d.name].nullable) for d in declared]


def sample_frame(features: pd.DataFrame, columns: list[ColumnSpec]) -> Frame:
    """The reference sample as the frame a request would give (the same decoding path)."""
    # Here, not at the top: validation loads numpy, and the registry is opened by commands
    # that only read the store (`pointsman models`) and must start at once.
    from pointsman.validation.signature import build_frame, records_to_columns

    signature = Signature(tuple(columns))
    sample = features[[c.name for c in columns]].head(SAMPLE_ROWS)
    records = profiles.to_records(sample, len(sample))
    raw, n, problems = records_to_columns(records, signature)
    return build_frame(signature, raw, n, problems)


def _smoke_test(
    runtime: Runtime,
    columns: list[ColumnSpec],
    example: list[dict[str, Any]],
    features: pd.DataFrame | None,
) -> tuple[list[Any] | None, dict[str, Any] | None, Frame | None]:
    """Predict on the example (and the training sample); refuse a model that cannot."""
    from pointsman.validation.signature import (  # numpy: see sample_frame
        build_frame,
        records_to_columns,
    )

    signature = Signature(tuple(columns))
    sample = None
    try:
        raw, n, problems = records_to_columns(example, signature)
        outputs = runtime.predict(build_frame(signature, raw, n, problems))
        outputs_profile = None
        if features is not None:
            sample = sample_frame(features, columns)
            full = runtime.predict(sample)
            outputs_profile = profiles.output_profile(full.predictions)
    except InvalidArtifact:
        raise
    except Exception as exc:
        raise InvalidArtifact(
            f"The model failed on the training sample: {type(exc).__name__}: {exc}. Check that "
            "--training-data holds the features the model was fitted on (and --target names "
            "the label column)."
        ) from exc
    return outputs.classes, outputs_profile, sample


# Formats whose loading runs code from the artifact (pickle, or a Python class/pyfunc).
RUNS_CODE = {"sklearn": "pickle/joblib", "mlflow": "MLflow pyfunc", "python": "Python code"}


def audit_detail(fmt: str) -> str:
    """The note the audit log keeps on a registration: why a code-running format was trusted."""
    kind = RUNS_CODE.get(fmt)
    if kind is None:
        return ""
    return (
        f"{kind} runs code when loaded: trusted only because an admin registered it; "
        "skops or ONNX are the safe formats."
    )


@dataclass
class CompileJob:
    """An on-demand compile of a stored version (`pointsman compile`): what the child needs."""

    model: str
    format: str
    artifact: Path
    trusted: tuple[str, ...]
    columns: list[dict[str, Any]]  # the version's signature inputs, as JSON
    sample: Path  # the kept reference sample (Parquet), or training data given now
    target: str | None = None  # the label column to drop from given training data


def compile_json(job: CompileJob, workdir: Path) -> dict[str, Any]:
    """Load a stored version and compile it against its sample (run in a child)."""
    runtime = load_runtime(job.format, job.artifact, None, job.trusted)
    columns = [ColumnSpec.from_json(c) for c in job.columns]
    features = profiles.read_training_data(job.sample)
    if job.target is not None and job.target in features.columns:
        features = features.drop(columns=[job.target])
    missing = [c.name for c in columns if c.name not in features.columns]
    if missing:
        raise InvalidArtifact(
            f"The training data lacks the version's columns {', '.join(missing)}; give the "
            "data the version was registered with."
        )
    return compile_version(
        job.format, runtime, columns, features, sample_frame(features, columns), workdir
    )
