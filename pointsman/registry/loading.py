"""Loading a stored version: verify its sha256, load its runtime, answer its input example.

Only runner processes load versions (see pointsman/runners): never an HTTP worker.
"""

from __future__ import annotations

from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.versions import VersionRecord
from pointsman.runtimes import Runtime, load_runtime
from pointsman.validation import build_frame, records_to_columns


def load_and_warm(artifacts: ArtifactStore, version: VersionRecord) -> Runtime:
    """A ready runtime for `version`; raises if the artifact changed or cannot answer."""
    path = artifacts.verified(version.artifact, version.sha256)
    trusted = tuple(version.lineage.get("trusted_types") or ())
    runtime = load_runtime(version.format, path, version.entrypoint, trusted)
    if version.input_example:
        raw, n, problems = records_to_columns(version.input_example, version.signature)
        runtime.predict(build_frame(version.signature, raw, n, problems))
    return runtime
