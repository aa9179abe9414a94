"""Content-addressed artifact storage in a local folder, verified at every load."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pointsman.errors import ArtifactTampered, InvalidArtifact

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder (each relative path and file digest, sorted)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            if "__pycache__" in rel.split("/"):
                continue
            digest.update(rel.encode() + b"\0" + _file_sha(file).encode() + b"\n")
        return digest.hexdigest()
    return _file_sha(path)


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Artifacts under `root/<sha[:2]>/<sha>/<original name>`; never edited once stored."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, source: Path) -> tuple[str, str]:
        """Copy `source` (file or folder) in; returns its sha256 and its path inside the store."""
        if not source.exists():
            raise InvalidArtifact(f"{source} does not exist.")
        if _has_symlink(source):
            raise InvalidArtifact(f"{source} is or contains a symbolic link; copy real files.")
        sha = sha256_of(source)
        rel = f"{sha[:2]}/{sha}/{source.name}"
        target = self.root / rel
        if target.exists():
            return sha, rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy beside the target, then rename: a crash never leaves a half-written artifact.
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            staged = Path(tmp) / source.name
            if source.is_dir():
                shutil.copytree(source, staged, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, staged)
            os.replace(staged, target)
        return sha, rel

    def work_root(self) -> Path:
        """A folder beside the artifacts for files being made (compiled models)."""
        folder = self.root / ".work"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def path_of(self, rel: str) -> Path:
        """The stored path of `rel`, refusing any path that would leave the store."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise InvalidArtifact(f"Artifact path {rel!r} points outside the artifact folder.")
        return path

    def verified(self, rel: str, sha: str) -> Path:
        """The stored path, after checking its content still has the registered sha256."""
        path = self.path_of(rel)
        if not path.exists():
            raise InvalidArtifact(
                f"Artifact {rel} is missing from {self.root}; restore the artifact folder from "
                "a backup or register the model again."
            )
        actual = sha256_of(path)
        if actual != sha:
            raise ArtifactTampered(str(path), sha, actual)
        return path


def _has_symlink(path: Path) -> bool:
    if path.is_symlink():
        return True
    return path.is_dir() and any(p.is_symlink() for p in path.rglob("*"))
