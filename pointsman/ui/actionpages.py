"""The pages of the console's actions: the forms, the confirmation (diff and reason), the
change itself, and uploading a new version."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pointsman.errors import BadRequest, PayloadTooLarge, PointsmanError
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.ui.actions import KINDS, carry_out, plan
from pointsman.ui.render import SECURITY_HEADERS, page, problem, render
from pointsman.ui.sessions import Viewer


def _project(request: Request) -> Project:
    project: Project = request.app.state.project
    return project


def _deny(request: Request, viewer: Viewer, model: str) -> Response | None:
    if viewer.may("deploy", model):
        return None
    return problem(
        request, viewer, 403,
        f"Your key ({viewer.name}) may not change {model!r}: it needs deploy:{model} or admin.",
    )  # fmt: skip


def _forms(project: Project, model: str) -> dict[str, Any]:
    route = project.routes.find(model)
    return {
        "model": model,
        "route": route,
        "numbers": project.registry.version_numbers(model),
        "weights": {a.version: a.weight for a in route.arms} if route else {},
        "canary": route.policy.canary if route and route.policy.canary else None,
        "kinds": KINDS,
        "max_upload_bytes": project.settings.max_upload_bytes,
        "max_upload": _size_text(project.settings.max_upload_bytes),
    }


def _size_text(size: int) -> str:
    """A size in bytes as people read it: KiB below a MiB, else MiB (as console.js writes it)."""
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


@page
async def actions(request: Request, viewer: Viewer) -> Response:
    model = str(request.path_params["model"])
    denied = _deny(request, viewer, model)
    if denied is not None:
        return denied
    try:
        data = await run_in_threadpool(_forms, _project(request), model)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    done = request.query_params.get("done", "")
    return render(request, "actions.html", viewer, title=f"{model}: actions", done=done, **data)


@page
async def confirm(request: Request, viewer: Viewer) -> Response:
    model = str(request.path_params["model"])
    denied = _deny(request, viewer, model)
    if denied is not None:
        return denied
    params = dict(request.query_params)
    kind = params.pop("kind", "")
    try:
        planned = await run_in_threadpool(plan, _project(request), model, kind, params)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    title = f"{model}: confirm {KINDS.get(kind, kind).lower()}"
    return render(request, "confirm.html", viewer, title=title, model=model, plan=planned,
                  what=KINDS[kind])  # fmt: skip


@page
async def act(request: Request, viewer: Viewer) -> Response:
    model, kind = str(request.path_params["model"]), str(request.path_params["kind"])
    denied = _deny(request, viewer, model)
    if denied is not None:
        return denied
    form = dict(await request.form())
    try:
        change = await run_in_threadpool(
            carry_out, _project(request), model, kind, form, viewer.name
        )
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    done = f"Revision {change.after.revision} in force: {'; '.join(change.changes)}"
    url = f"/ui/models/{model}/actions?done={quote(done)}"
    return RedirectResponse(url, 303, headers=SECURITY_HEADERS)


def _save(upload: UploadFile, folder: Path) -> Path:
    name = Path(upload.filename or "upload").name or "upload"
    target = folder / name
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
    return target


def _register(project: Project, model: str, form: Any, who: str) -> str:
    artifact, data = form.get("artifact"), form.get("training_data")
    if not isinstance(artifact, UploadFile) or not artifact.filename:
        raise BadRequest("Choose the model file to upload.")
    reason = str(form.get("reason") or "").strip()
    if not reason:
        raise BadRequest("Say why you register it (the reason is kept in the audit log).")
    sizes = [f.size or 0 for f in (artifact, data) if isinstance(f, UploadFile)]
    if sum(sizes) > project.settings.max_upload_bytes:
        raise PayloadTooLarge(sum(sizes), project.settings.max_upload_bytes, "max_upload_bytes")
    with tempfile.TemporaryDirectory(dir=project.settings.artifact_path(), prefix=".ui-") as tmp:
        path = _save(artifact, Path(tmp))
        training = (
            _save(data, Path(tmp)) if isinstance(data, UploadFile) and data.filename else None
        )
        record, created = project.registry.register(
            Submission(
                model=model,
                path=path,
                training_data=training,
                target=str(form.get("target") or "").strip() or None,
                note=str(form.get("note") or ""),
                user=who,
                reason=reason,
                compile=bool(form.get("compile")),  # a checkbox: absent when unticked
            )
        )
    if not created:
        return f"These bytes are version {record.number} already."
    return f"Registered version {record.number}."


# Room in a multipart body for its boundaries and small fields, beyond the files themselves.
_FORM_OVERHEAD_BYTES = 64 * 1024


def _too_large(request: Request) -> PointsmanError | None:
    """Refuse before the body is read: the files may add up to max_upload_bytes (what the
    admin API takes as one archive), and the body must say its length."""
    limit = _project(request).settings.max_upload_bytes
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return BadRequest(
            "The upload did not say its length (Content-Length): send it from the form."
        )
    if int(length) > limit + _FORM_OVERHEAD_BYTES:
        return PayloadTooLarge(int(length), limit, "max_upload_bytes")
    return None


async def _upload(request: Request, viewer: Viewer) -> Response:
    model = str(request.path_params["model"])
    denied = _deny(request, viewer, model)
    if denied is not None:
        return denied
    form = await request.form()
    try:
        done = await run_in_threadpool(_register, _project(request), model, form, viewer.name)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    url = f"/ui/models/{model}/actions?done={quote(done)}"
    return RedirectResponse(url, 303, headers=SECURITY_HEADERS)


upload = page(_upload, body_check=_too_large)
