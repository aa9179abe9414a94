"""Loading a stored version: verify its sha256, load its runtime, answer its input example."""

from __future__ import annotations

from pointsman.errors import ModelNotReady, PointsmanError
from pointsman.registry.models import Registry
from pointsman.registry.versions import VersionRecord
from pointsman.runtimes import Runtime, load_runtime
from pointsman.validation import build_frame, records_to_columns


def load_and_warm(registry: Registry, record: VersionRecord) -> Runtime:
    """A ready runtime for `record`; raises if the artifact changed or cannot answer."""
    path = registry.artifact_path(record)
    trusted = tuple(record.lineage.get("trusted_types") or ())
    runtime = load_runtime(record.format, path, record.entrypoint, trusted)
    if record.input_example:
        raw, n, problems = records_to_columns(record.input_example, record.signature)
        runtime.predict(build_frame(record.signature, raw, n, problems))
    return runtime


def preflight(registry: Registry, model: str, versions: list[int]) -> None:
    """Load and warm each version (in this process) before it may be routed."""
    for number in versions:
        record = registry.get_version(model, number)
        try:
            load_and_warm(registry, record)
        except PointsmanError as exc:
            raise ModelNotReady(model, str(number), exc.message) from exc
        except Exception as exc:
            raise ModelNotReady(
                model, str(number), f"failed its input example: {type(exc).__name__}: {exc}"
            ) from exc
