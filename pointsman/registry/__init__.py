"""Models, versions, artifacts, lineage and reference profiles."""

from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.models import ModelSummary, Registry, bump_changes, read_change_counter
from pointsman.registry.register import Submission
from pointsman.registry.versions import VersionRecord

__all__ = [
    "ArtifactStore",
    "ModelSummary",
    "Registry",
    "Submission",
    "VersionRecord",
    "bump_changes",
    "read_change_counter",
]
