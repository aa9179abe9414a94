"""The admin API's view of one model and its runners: GET /v1/admin/models/{m}, and
GET/PUT /v1/admin/models/{m}/runners (the same as `pointsman runners`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.routing import BaseRoute

from pointsman.api.admin import Body, User, Version, checked, who
from pointsman.api.common import catalog_of, project_of
from pointsman.runners.spec import DURATION, SIZE, parse_bytes, parse_seconds

router = APIRouter(prefix="/v1/admin/models", tags=["admin"])


# A size or duration as text, in the forms runners/spec.py reads; RunnerSpec checks every
# field (its 422 names the limit: memory at least 512 MiB, a timeout of at most a day).
Size = Annotated[str, Field(**checked(pattern=SIZE))] | Annotated[int, Field(**checked(minimum=0))]
Seconds = (
    Annotated[str, Field(**checked(pattern=DURATION))]
    | Annotated[float, Field(**checked(exclusiveMinimum=0))]
)


class RunnersIn(Body):
    """Fields to change; a field left out keeps its value. `cpu` or `memory` null: no limit."""

    version: Version | None = Field(
        None, description="Change one version only (default: the model)."
    )
    replicas: int | None = Field(None, **checked(minimum=1, maximum=64))
    cpu: float | None = Field(
        None, description="CPUs per runner (0: no limit).", **checked(minimum=0, maximum=256)
    )
    memory: Size | None = Field(None, description="Bytes or a size such as `1GiB`; 0: no limit.")
    disk: Size | None = Field(None, description="Largest file in the scratch folder.")
    timeout: Seconds | None = Field(None, description="Seconds, or e.g. `2s`, `500ms`.")
    queue: int | None = Field(None, **checked(minimum=1, maximum=100_000))
    max_batch_rows: int | None = Field(None, **checked(minimum=1, maximum=1_000_000))
    max_wait_ms: float | None = Field(None, **checked(minimum=0, maximum=1000))
    runtime: Literal["auto", "original", "compiled"] | None = Field(
        None, description="auto: compiled where it agreed; compiled is refused where not."
    )
    reason: str = ""

    def changes(self) -> dict[str, Any]:
        given = self.model_fields_set - {"version", "reason"}
        out: dict[str, Any] = {}
        for name in ("replicas", "queue", "max_batch_rows", "max_wait_ms", "runtime"):
            if name in given and getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if "cpu" in given:
            out["cpu"] = self.cpu or 0  # null: no CPU limit
        if "memory" in given:
            out["memory_bytes"] = (
                0 if self.memory is None else parse_bytes(str(self.memory), "memory")
            )
        if "disk" in given and self.disk is not None:
            out["disk_bytes"] = parse_bytes(str(self.disk), "disk")
        if "timeout" in given and self.timeout is not None:
            out["timeout_s"] = parse_seconds(str(self.timeout), "timeout")
        return out


def runners_json(request: Request, model: str) -> dict[str, Any]:
    """The spec in force for the model and each routed version, and what its runners do."""
    project, catalog = project_of(request), catalog_of(request)
    route = project.routes.find(model)
    specs = []
    for number, spec in project.runners.overview(model, route.versions if route else []):
        entry: dict[str, Any] = {"version": number, "spec": spec.to_json()}
        if number is not None:
            state = catalog.runner_state(model, number)
            entry["runners"] = state.get("runners") or []
        specs.append(entry)
    return {"model": model, "enforcement": project.enforcement.describe(), "specs": specs}


@router.get("/{model}", summary="One model: its versions, the route in force, its runners")
def get_model(request: Request, model: str) -> dict[str, Any]:
    project = project_of(request)
    versions = [
        {"version": v.number, "format": v.format, "sha256": v.sha256,
         "created_at": v.created_at.isoformat()}
        for v in project.registry.list_versions(model)
    ]  # fmt: skip
    route = project.routes.find(model)
    return {
        "model": model,
        "versions": versions,
        "route": route.to_json() if route else None,
        "runners": runners_json(request, model),
    }


@router.get("/{model}/runners", summary="Runner specs and state of a model's versions")
def get_runners(request: Request, model: str) -> dict[str, Any]:
    project_of(request).registry.version_numbers(model)  # 404 naming the known models
    return runners_json(request, model)


@router.put("/{model}/runners", summary="Change the runners of a model or one version")
def put_runners(request: Request, model: str, body: RunnersIn, user: User = None) -> dict[str, Any]:
    project = project_of(request)
    project.registry.version_numbers(model)
    if body.version is not None:
        project.registry.get_version(model, body.version)
    changes = body.changes()
    spec = project.runners.change(model, body.version, changes, who(request, user), body.reason)
    return {"model": model, "version": body.version, "spec": spec.to_json()}


def routes() -> list[BaseRoute]:
    return list(router.routes)
