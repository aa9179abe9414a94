"""Batch input and output in an S3-compatible bucket, as the artifact store reaches it.

Endpoint, region and credentials come from boto3's own chain (AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, profiles, roles), as for `artifact_store`. An input object is downloaded
to a temporary file while it is read (disk, not memory, holds it); the output is assembled
locally and uploaded once, whole.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pointsman.errors import BadBatchSource, ConfigError

SUFFIXES = (".csv", ".parquet", ".pq")


def _client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError(
            "s3:// input and output need boto3: install pointsman[s3] (pip install "
            "'pointsman[s3]')."
        ) from exc
    config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard"})
    return boto3.session.Session().client("s3", config=config)


def split(url: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise BadBatchSource(f"{url!r} names no bucket: write s3://BUCKET/KEY or PREFIX.")
    return bucket, key


def list_s3(url: str) -> list[str]:
    """The CSV/Parquet objects at `url`: the object itself, or every one under the prefix."""
    bucket, key = split(url)
    client = _client()
    try:
        if key.lower().endswith(SUFFIXES) and _exists(client, bucket, key):
            return [url]
        prefix = key.rstrip("/") + "/" if key else ""
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [o["Key"] for o in page.get("Contents", [])]
    except Exception as exc:
        raise BadBatchSource(f"Cannot list {url}: {exc}") from exc
    files = sorted(f"s3://{bucket}/{k}" for k in found if k.lower().endswith(SUFFIXES))
    if not files:
        raise BadBatchSource(f"{url} holds no .csv or .parquet object.")
    return files


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True


def download(url: str) -> Path:
    """The object in a temporary file of its own (the caller removes it)."""
    bucket, key = split(url)
    with tempfile.NamedTemporaryFile(suffix=Path(key).suffix, delete=False) as f:
        target = Path(f.name)
    try:
        _client().download_file(bucket, key, str(target))
    except Exception as exc:
        target.unlink(missing_ok=True)
        raise BadBatchSource(f"Cannot read {url}: {exc}") from exc
    return target


def upload(path: Path, url: str) -> None:
    bucket, key = split(url)
    try:
        _client().upload_file(str(path), bucket, key)
    except Exception as exc:
        raise BadBatchSource(f"Cannot write {url}: {exc}") from exc
