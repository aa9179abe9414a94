"""Remote register: a submission packed as one tar archive, sent to a server, unpacked there.

The archive (`application/x-tar`, uncompressed) holds:

    submission.json     format, entrypoint, target, params, metrics, note, trusted_types,
                        compile (whether to compile to ONNX at register),
                        artifact_sha256 (the version's sha256 as the client computed it)
                        and git (the client's commit, kept in the version's lineage)
    artifact/NAME       the model file, or its folder
    training/NAME       the training sample (optional)

The request carries the archive's own sha256 (header `X-Pointsman-Sha256`): checked as the
body arrives, then `artifact_sha256` is checked against the unpacked artifact, so the version
stored is byte for byte the one the client hashed.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from pointsman.errors import InvalidArtifact, MalformedUpload, UploadDigestMismatch
from pointsman.registry import lineage
from pointsman.registry.artifacts import sha256_of
from pointsman.registry.models import Registry
from pointsman.registry.register import Submission
from pointsman.registry.versions import VersionRecord

CONTENT_TYPE = "application/x-tar"
DIGEST_HEADER = "X-Pointsman-Sha256"
META = "submission.json"


class UploadMeta(BaseModel):
    """submission.json: everything of a Submission but the files and the user."""

    model_config = ConfigDict(extra="forbid")

    artifact_sha256: str
    format: str | None = None
    entrypoint: str | None = None
    target: str | None = None
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    note: str = ""
    trusted_types: list[str] = []
    compile: bool = True
    git: dict[str, Any] | None = None  # the client's commit: lineage of the version


def pack(sub: Submission, target: Path) -> str:
    """Write `sub` as an upload archive at `target`; returns the artifact's sha256."""
    for path in (sub.path, sub.training_data):
        if path is not None and _has_link(path):
            raise InvalidArtifact(f"{path} is or contains a symbolic link; copy real files.")
    artifact_sha = sha256_of(sub.path)
    meta = UploadMeta(
        artifact_sha256=artifact_sha,
        format=sub.format,
        entrypoint=sub.entrypoint,
        target=sub.target,
        params=sub.params,
        metrics=sub.metrics,
        note=sub.note,
        trusted_types=list(sub.trusted_types),
        compile=sub.compile,
        git=lineage.git_commit(Path.cwd()),
    )
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        data = orjson.dumps(meta.model_dump(), option=orjson.OPT_INDENT_2)
        info = tarfile.TarInfo(META)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(sub.path, arcname=f"artifact/{sub.path.name}", filter=_no_bytecode)
        if sub.training_data is not None:
            tar.add(sub.training_data, arcname=f"training/{sub.training_data.name}")
    return artifact_sha


def _no_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def _has_link(path: Path) -> bool:
    if path.is_symlink():
        return True
    return path.is_dir() and any(p.is_symlink() for p in path.rglob("*"))


def unpack(bundle: Path, folder: Path, model: str, user: str) -> tuple[Submission, str]:
    """The submission in an upload archive (extracted into `folder`), and its declared sha256."""
    try:
        with tarfile.open(bundle, "r:") as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise MalformedUpload(
                        f"The upload holds {member.name!r}, which is not a file or a folder: "
                        "links and devices are refused."
                    )
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as exc:  # OSError: e.g. a name too long to extract
        raise MalformedUpload(
            f"The upload is not a readable tar archive ({exc}); send what `pointsman register "
            "--url` sends: submission.json, artifact/NAME and optionally training/NAME."
        ) from exc
    meta_file = folder / META
    if not meta_file.is_file():
        raise MalformedUpload(f"The upload has no {META}.")
    try:
        meta = UploadMeta.model_validate_json(meta_file.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MalformedUpload(f"{META} of the upload is not valid: {problems}.") from exc
    artifacts = _entries(folder / "artifact")
    if len(artifacts) != 1:
        raise MalformedUpload(
            f"The upload must hold one entry under artifact/, found {len(artifacts)}."
        )
    training = _entries(folder / "training")
    if len(training) > 1:
        raise MalformedUpload(
            f"The upload may hold one file under training/, found {len(training)}."
        )
    sub = Submission(
        model=model,
        path=artifacts[0],
        format=meta.format,
        entrypoint=meta.entrypoint,
        training_data=training[0] if training else None,
        target=meta.target,
        params=meta.params,
        metrics=meta.metrics,
        note=meta.note,
        user=user,
        trusted_types=tuple(meta.trusted_types),
        compile=meta.compile,
        client_lineage={"git": meta.git},
    )
    return sub, meta.artifact_sha256.lower()


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def register_upload(
    registry: Registry, model: str, bundle: Path, folder: Path, user: str
) -> tuple[VersionRecord, bool]:
    """Unpack an upload archive and register it: the same path as a local `register`."""
    sub, declared = unpack(bundle, folder, model, user)
    actual = sha256_of(sub.path)
    if actual != declared:
        raise UploadDigestMismatch("unpacked artifact", declared, actual)
    return registry.register(sub)
