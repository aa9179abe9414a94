"""Artifacts in an S3-compatible bucket, downloaded into a local cache keyed by sha256.

`register` copies the artifact into the cache, loads it from there, then uploads it (a
file as one object, a folder as one object per file under the artifact's key). Servers
download a version into the cache before its runners start; every load re-hashes the
cached copy (as the local folder is re-hashed), and a cached copy that no longer matches is
downloaded again. Endpoint, region and credentials come from boto3's own chain
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, profiles, roles).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pointsman.errors import (
    ArtifactMissing,
    ArtifactStoreUnavailable,
    ArtifactTampered,
    ConfigError,
    PointsmanError,
)
from pointsman.registry.artifacts import (
    LocalArtifacts,
    OnBytes,
    folder_digest,
    folder_files,
    sha256_of,
)

log = logging.getLogger("pointsman.registry")

_CHUNK = 1 << 20


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix without slashes at its ends)."""
    scheme, sep, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not sep or not bucket:
        raise ConfigError(
            f"artifact_store {url!r} is not understood: give s3://BUCKET or s3://BUCKET/PREFIX "
            "(or leave it empty for the artifact_dir folder)."
        )
    return bucket, prefix.strip("/")


class S3Artifacts:
    """Artifacts under `s3://bucket/prefix/<sha[:2]>/<sha>/<name>`, cached in a local folder."""

    def __init__(self, url: str, cache: Path) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(url)
        self.cache = LocalArtifacts(cache)
        self._client: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Runner processes get the store pickled: they make their own client if they need one.
        return {**self.__dict__, "_client": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def client(self) -> Any:
        """boto3's S3 client (made once, thread-safe), configured by boto3's own chain."""
        with self._lock:
            if self._client is None:
                try:
                    import boto3  # the optional extra: only a project on S3 needs it
                    from botocore.config import Config
                except ImportError as exc:
                    raise ConfigError(
                        f"artifact_store is {self.url}, which needs boto3: install "
                        "pointsman[s3] (pip install 'pointsman[s3]')."
                    ) from exc
                config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard"})
                self._client = boto3.session.Session().client("s3", config=config)
            return self._client

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def where(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"

    def describe(self) -> str:
        return self.url

    # -- writing ---------------------------------------------------------------------
    def put(self, source: Path) -> tuple[str, str]:
        return self.cache.put(source)

    def work_root(self) -> Path:
        return self.cache.work_root()

    def publish(self, rel: str) -> None:
        path = self.cache.path_of(rel)
        key = self.key(rel)
        with self._errors(rel):
            if path.is_dir():
                # Every file, even when some are there: an upload cut short left the others.
                for sub, file in folder_files(path):
                    self.client().upload_file(str(file), self.bucket, f"{key}/{sub}")
            elif not self._exists(key):
                self.client().upload_file(str(path), self.bucket, key)

    def _exists(self, key: str) -> bool:
        try:
            self.client().head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    # -- reading ---------------------------------------------------------------------
    def path_of(self, rel: str) -> Path:
        return self.cache.path_of(rel)

    def is_local(self, rel: str) -> bool:
        return self.cache.path_of(rel).exists()

    def verified(self, rel: str, sha: str) -> Path:
        path = self.cache.path_of(rel)
        if path.exists():
            try:
                return self.cache.verified(rel, sha)
            except ArtifactTampered:
                log.warning("cached %s no longer matches its sha256; downloading it again", path)
        return self.fetch(rel, sha)

    def fetch(self, rel: str, sha: str) -> Path:
        """Download `rel` into the cache and check its sha256 (one process at a time)."""
        path = self.cache.path_of(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.parent / ".lock"):
            if path.exists():
                if sha256_of(path) == sha:
                    return path  # another process downloaded it meanwhile
                _remove(path)
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".fetch-") as tmp:
                staged = Path(tmp) / path.name
                self._download(rel, staged)
                actual = sha256_of(staged)
                if actual != sha:
                    raise ArtifactTampered(self.where(rel), sha, actual)
                os.replace(staged, path)
        log.info("downloaded %s into %s", self.where(rel), path)
        return path

    def _download(self, rel: str, target: Path) -> None:
        key = self.key(rel)
        with self._errors(rel):
            files = self._folder_objects(key)
            if not files:
                self.client().download_file(self.bucket, key, str(target))
                return
            for sub in files:
                dest = target / sub
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.client().download_file(self.bucket, f"{key}/{sub}", str(dest))

    def _folder_objects(self, key: str) -> list[str]:
        """The files of a folder artifact (relative paths), or [] when `key` is no folder."""
        out = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=key + "/"):
            for item in page.get("Contents", []):
                sub = item["Key"][len(key) + 1 :]
                parts = PurePosixPath(sub).parts
                if not sub or sub.startswith("/") or ".." in parts:
                    raise ArtifactStoreUnavailable(
                        self.url, f"object {item['Key']!r} is not a file of the artifact"
                    )
                out.append(sub)
        return sorted(out)

    def check(self, rel: str, sha: str, on_bytes: OnBytes | None = None) -> int:
        """Hash the stored objects themselves (streamed, not cached); returns their size."""
        key = self.key(rel)
        with self._errors(rel):
            files = self._folder_objects(key)
            if not files:
                actual, size = self._object_sha(key, on_bytes)
            else:
                size, digests = 0, []
                for sub in files:
                    file_sha, file_size = self._object_sha(f"{key}/{sub}", on_bytes)
                    digests.append((sub, file_sha))
                    size += file_size
                actual = folder_digest(digests)
        if actual != sha:
            raise ArtifactTampered(self.where(rel), sha, actual)
        return size

    def _object_sha(self, key: str, on_bytes: OnBytes | None) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        body = self.client().get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        return digest.hexdigest(), size

    @contextlib.contextmanager
    def _errors(self, rel: str) -> Iterator[None]:
        """boto3's errors as the store's: a missing object, or a store that cannot be used."""
        try:
            yield
        except PointsmanError:
            raise
        except Exception as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactMissing(self.where(rel), self.url) from exc
            if code == "NoSuchBucket":
                reason = f"bucket {self.bucket!r} does not exist"
                raise ArtifactStoreUnavailable(self.url, reason) from exc
            if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
                raise ArtifactStoreUnavailable(self.url, str(exc)) from exc
            raise


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive lock on `lock_path` across processes (servers sharing one cache)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
