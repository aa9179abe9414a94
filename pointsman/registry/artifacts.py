"""Content-addressed artifact storage (a local folder, or an S3 bucket with a local cache),
verified at every load.

Both keep an artifact at `<sha[:2]>/<sha>/<original name>` (a file, or a folder of files):
under the folder, or under the bucket's prefix. A version records that relative path and
the sha256; nothing stored is ever edited.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pointsman.errors import ArtifactMissing, ArtifactTampered, InvalidArtifact

_CHUNK = 1 << 20

# Told the bytes read so far while an artifact is hashed (progress bars).
OnBytes = Callable[[int], None]


def sha256_of(path: Path, on_bytes: OnBytes | None = None) -> str:
    """sha256 of a file, or of a folder (each relative path and file digest, sorted)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for rel, file in folder_files(path):
            digest.update(rel.encode() + b"\0" + _file_sha(file, on_bytes).encode() + b"\n")
        return digest.hexdigest()
    return _file_sha(path, on_bytes)


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """The files of an artifact folder by relative path, sorted (bytecode caches left out)."""
    out = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if "__pycache__" not in rel.split("/"):
            out.append((rel, file))
    return out


def folder_digest(files: list[tuple[str, str]]) -> str:
    """The sha256 of a folder from (relative path, file sha256) pairs, as `sha256_of` makes it."""
    digest = hashlib.sha256()
    for rel, sha in sorted(files):
        digest.update(rel.encode() + b"\0" + sha.encode() + b"\n")
    return digest.hexdigest()


def _file_sha(path: Path, on_bytes: OnBytes | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


class ArtifactStore(Protocol):
    """Where versions' artifacts live. Picklable: runner processes get one as they start."""

    def put(self, source: Path) -> tuple[str, str]:
        """Copy `source` (file or folder) to local disk; returns its sha256 and relative path.

        The copy is not yet in a remote store: `publish` sends it once it is known to load.
        """

    def publish(self, rel: str) -> None:
        """Make a `put` artifact available to every server (upload it, if the store is remote)."""

    def work_root(self) -> Path:
        """A local folder for files being made (compiled models) before they are `put`."""

    def path_of(self, rel: str) -> Path:
        """The local path of `rel` (which may not exist yet, for a remote store)."""

    def is_local(self, rel: str) -> bool:
        """Whether `rel` is on local disk already (no download needed; not yet verified)."""

    def fetch(self, rel: str, sha: str) -> Path:
        """Bring `rel` to local disk (download it, for a remote store) and verify it."""

    def verified(self, rel: str, sha: str) -> Path:
        """The local path, after checking its content has the registered sha256 (downloading
        it first if needed); ArtifactMissing or ArtifactTampered otherwise."""

    def check(self, rel: str, sha: str, on_bytes: OnBytes | None = None) -> int:
        """Check the stored copy itself has the registered sha256; returns its size in bytes."""

    def describe(self) -> str:
        """Where artifacts are stored, for messages."""


class LocalArtifacts:
    """Artifacts in a local folder (shared by every server only through a shared filesystem)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, source: Path) -> tuple[str, str]:
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

    def publish(self, rel: str) -> None:
        return None  # the folder is the store

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

    def is_local(self, rel: str) -> bool:
        return True

    def fetch(self, rel: str, sha: str) -> Path:
        return self.verified(rel, sha)

    def verified(self, rel: str, sha: str) -> Path:
        path = self.path_of(rel)
        if not path.exists():
            raise ArtifactMissing(rel, str(self.root))
        actual = sha256_of(path)
        if actual != sha:
            raise ArtifactTampered(str(path), sha, actual)
        return path

    def check(self, rel: str, sha: str, on_bytes: OnBytes | None = None) -> int:
        path = self.path_of(rel)
        if not path.exists():
            raise ArtifactMissing(rel, str(self.root))
        seen = [0]

        def count(n: int) -> None:
            seen[0] += n
            if on_bytes is not None:
                on_bytes(n)

        actual = sha256_of(path, count)
        if actual != sha:
            raise ArtifactTampered(str(path), sha, actual)
        return seen[0]

    def describe(self) -> str:
        return str(self.root)


def _has_symlink(path: Path) -> bool:
    if path.is_symlink():
        return True
    return path.is_dir() and any(p.is_symlink() for p in path.rglob("*"))
