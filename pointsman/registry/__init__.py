"""Models, versions, artifacts, lineage and reference profiles."""

from pointsman.registry.artifacts import ArtifactStore, LocalArtifacts
from pointsman.registry.models import ModelSummary, Registry, bump_changes, read_change_counter
from pointsman.registry.register import Submission
from pointsman.registry.stores import build_artifact_store
from pointsman.registry.versions import VersionRecord

__all__ = [
    "ArtifactStore",
    "LocalArtifacts",
    "ModelSummary",
    "Registry",
    "Submission",
    "VersionRecord",
    "build_artifact_store",
    "bump_changes",
    "read_change_counter",
]
