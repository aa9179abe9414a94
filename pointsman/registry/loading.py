"""Loading a stored version: verify its sha256, load its runtime, answer its input example.

Only runner processes load versions (see pointsman/runners): never an HTTP worker.
"""

from __future__ import annotations

from pointsman.errors import CompiledRuntimeRefused, InvalidArtifact
from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.versions import VersionRecord
from pointsman.runtimes import Runtime, load_runtime
from pointsman.validation.signature import build_frame, records_to_columns


def resolve_runtime(version: VersionRecord, asked: str) -> str:
    """Which runtime a runner of `version` runs, for a spec's `runtime` (auto, original,
    compiled): auto is the compiled one when it agreed; compiled without agreement is refused."""
    if asked == "original":
        return "original"
    if asked == "compiled":
        if not version.compiled_agreed:
            raise CompiledRuntimeRefused(version.model, version.number, version.compiled_reason())
        return "compiled"
    if asked != "auto":
        raise InvalidArtifact(f"Unknown runtime {asked!r}; write auto, original or compiled.")
    return "compiled" if version.compiled_agreed else "original"


def load_and_warm(
    artifacts: ArtifactStore, version: VersionRecord, asked: str = "original"
) -> Runtime:
    """A ready runtime for `version`; raises if the artifact changed or cannot answer."""
    return load_resolved(artifacts, version, asked)[0]


def load_resolved(
    artifacts: ArtifactStore, version: VersionRecord, asked: str
) -> tuple[Runtime, str]:
    """A ready runtime for `version` under the spec's `runtime`, and which one it is
    (original | compiled); raises if an artifact changed or cannot answer."""
    which = resolve_runtime(version, asked)
    if which == "compiled":
        from pointsman.runtimes.onnx import OnnxRuntime

        compiled = version.compiled or {}
        path = artifacts.verified(str(compiled["artifact"]), str(compiled["sha256"]))
        classes = None if version.signature.classes is None else list(version.signature.classes)
        runtime: Runtime = OnnxRuntime.from_file(path, classes)
    else:
        path = artifacts.verified(version.artifact, version.sha256)
        trusted = tuple(version.lineage.get("trusted_types") or ())
        runtime = load_runtime(version.format, path, version.entrypoint, trusted)
    if version.input_example:
        raw, n, problems = records_to_columns(version.input_example, version.signature)
        runtime.predict(build_frame(version.signature, raw, n, problems))
    return runtime, which
