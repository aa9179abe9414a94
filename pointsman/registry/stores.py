"""The artifact store a project's settings name: a local folder, or an S3 bucket."""

from __future__ import annotations

from pointsman.registry.artifacts import ArtifactStore, LocalArtifacts
from pointsman.registry.s3 import S3Artifacts
from pointsman.settings import Settings


def build_artifact_store(settings: Settings) -> ArtifactStore:
    """`artifact_store` (an S3 bucket and prefix), else the `artifact_dir` folder.

    With S3, `artifact_dir` is the local cache that versions are downloaded into."""
    folder = settings.artifact_path()
    folder.mkdir(parents=True, exist_ok=True)
    if settings.artifact_store:
        return S3Artifacts(settings.artifact_store, folder)
    return LocalArtifacts(folder)
