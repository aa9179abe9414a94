"""Models, versions, artifacts, lineage and reference profiles.

Only what holds no store is imported here: the commands that just read the store must not
load SQLAlchemy. `Registry` and the change counter are in `pointsman.registry.models`,
`build_artifact_store` in `pointsman.registry.stores`.
"""

from pointsman.registry.artifacts import ArtifactStore, LocalArtifacts
from pointsman.registry.register import Submission
from pointsman.registry.summary import ModelSummary
from pointsman.registry.versions import VersionRecord

__all__ = [
    "ArtifactStore",
    "LocalArtifacts",
    "ModelSummary",
    "Submission",
    "VersionRecord",
]
