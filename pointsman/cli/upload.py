"""`pointsman register --url`: the submission packed, uploaded and registered by a server."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import httpx

from pointsman.cli.predict import RemoteError
from pointsman.registry import Submission
from pointsman.registry.upload import CONTENT_TYPE, DIGEST_HEADER, pack

# Registering loads, smoke-tests and profiles the model on the server: allow it time.
TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)


def register_remote(url: str, key: str | None, sub: Submission) -> tuple[dict[str, Any], bool]:
    """The version the server at `url` registered from `sub`, and whether it is new."""
    with tempfile.TemporaryDirectory(prefix="pointsman-upload-") as tmp:
        bundle = Path(tmp) / "upload.tar"
        pack(sub, bundle)
        digest = hashlib.sha256()
        with bundle.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        headers = {
            "Content-Type": CONTENT_TYPE,
            DIGEST_HEADER: digest.hexdigest(),
            "X-Pointsman-User": sub.user,
        }
        if key:
            headers["Authorization"] = f"Bearer {key}"
        target = f"{url.rstrip('/')}/v1/admin/models/{sub.model}/versions"
        try:
            with bundle.open("rb") as body:
                response = httpx.post(target, content=body, headers=headers, timeout=TIMEOUT)
        except httpx.WriteError as exc:
            raise RemoteError(
                f"{url} closed the connection while the upload ({bundle.stat().st_size} bytes) "
                f"was sent ({exc}); it may be larger than the server's max_upload_bytes."
            ) from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"Cannot reach {url}: {exc}. Is `pointsman serve` running?") from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise RemoteError(f"{url} answered {response.status_code} with non-JSON.") from exc
    if response.status_code >= 400:
        error = data.get("error", data) if isinstance(data, dict) else data
        raise RemoteError(f"{response.status_code}: {error}")
    return data, response.status_code == 201
