"""POST /v1/admin/models/{model}/versions: a new version uploaded by `pointsman register --url`.

The body (a tar archive, see pointsman/registry/upload.py) is streamed to a temporary file
beside the artifacts, counted against `max_upload_bytes` (413) and hashed as it arrives
(422 when not the sha256 the client declared); the server then registers it exactly as a
local `pointsman register` does: loaded and profiled under the model's runner limits,
uploaded to the artifact store, audited under the key's name.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from starlette.routing import BaseRoute

from pointsman.api.admin import ErrorOut, User, who
from pointsman.api.common import project_of
from pointsman.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, UploadDigestMismatch
from pointsman.registry.upload import CONTENT_TYPE, DIGEST_HEADER, register_upload

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
SHA256_HEADER = r"^\s*[0-9a-fA-F]{64}\s*$"  # what the header may hold (trimmed, any case)

router = APIRouter(
    prefix="/v1/admin/models",
    tags=["admin"],
    responses={
        400: {
            "model": ErrorOut,
            "description": "No sha256 header, not a loadable model (invalid_artifact, "
            "unsafe_artifact), or not an archive `pointsman register --url` sends "
            "(malformed_upload)",
        },
        413: {"model": ErrorOut, "description": "Larger than max_upload_bytes"},
        415: {"model": ErrorOut, "description": "Not application/x-tar"},
        422: {"model": ErrorOut, "description": "The sha256 declared is not the one received"},
    },
)


@router.post(
    "/{model}/versions",
    summary="Register a new version from an upload (what `pointsman register --url` sends)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        # Read by the handler, whose 400 names the header and what it must hold.
        "parameters": [
            {
                "name": DIGEST_HEADER,
                "in": "header",
                "required": True,
                "description": "sha256 (hex) of the body, checked on arrival.",
                "schema": {"type": "string", "pattern": SHA256_HEADER},
            }
        ],
    },
)
async def upload_version(
    request: Request,
    response: Response,
    model: str,
    user: User = None,
) -> dict[str, Any]:
    """201 with the new version, or 200 with the existing one when the bytes are known."""
    digest = request.headers.get(DIGEST_HEADER)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != CONTENT_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type {media or 'none'!r} is not accepted here: send {CONTENT_TYPE} "
            "(what `pointsman register --url` sends)."
        )
    declared = (digest or "").strip().lower()
    if not _SHA256.match(declared):
        raise BadRequest(
            f"Header {DIGEST_HEADER} must carry the sha256 of the body as 64 hex digits, "
            f"got {digest!r}."
        )
    project = project_of(request)
    limit = project.settings.max_upload_bytes
    by = who(request, user)
    with tempfile.TemporaryDirectory(
        dir=project.settings.artifact_path(), prefix=".upload-"
    ) as tmp:
        bundle = Path(tmp) / "upload.tar"
        actual = await receive(request, bundle, limit)
        if actual != declared:
            raise UploadDigestMismatch("upload", declared, actual)
        record, created = await anyio.to_thread.run_sync(
            functools.partial(
                register_upload, project.registry, model, bundle, Path(tmp) / "unpacked", by
            )
        )
    response.status_code = 201 if created else 200
    return {**record.to_json(), "created": created}


async def receive(request: Request, target: Path, limit: int) -> str:
    """Stream the body into `target`; its sha256. 413 past `limit` bytes (before reading
    any when Content-Length says so)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(int(length), limit, "max_upload_bytes")
    digest = hashlib.sha256()
    size = 0
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(size, limit, "max_upload_bytes")
            digest.update(chunk)
            await out.write(chunk)
    return digest.hexdigest()


def routes() -> list[BaseRoute]:
    return list(router.routes)
