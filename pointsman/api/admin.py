"""The admin API under /v1/admin: models, versions, routes and canaries, JSON in and out.

Not on the hot path: FastAPI routes with pydantic bodies (and OpenAPI docs at /docs). The
endpoints are plain `def`s, so FastAPI runs their blocking store calls in its threadpool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from pointsman.api.access import client_of
from pointsman.api.common import project_of
from pointsman.gates.verdicts import GATE, QualityGate
from pointsman.registry.about import (
    MAX_DESCRIPTION,
    MAX_TAGS,
    TAG,
    check_about,
    load_about,
    save_about,
)
from pointsman.routing import Arm, Gates, Policy, Shadow, history_json
from pointsman.routing.agreement import Agreement
from pointsman.routing.canary import canary_status
from pointsman.validation.policy import ValidationPolicy


class ErrorOut(BaseModel):
    """Every non-2xx answer: `error` says what was wrong and what to do."""

    error: str
    code: str


router = APIRouter(
    prefix="/v1/admin/models",
    tags=["admin"],
    responses={
        404: {"model": ErrorOut, "description": "Unknown model or version"},
        409: {"model": ErrorOut, "description": "Conflicts with the route in force"},
        422: {"model": ErrorOut, "description": "Refused body or traffic policy"},
        503: {"model": ErrorOut, "description": "The model is not deployed"},
    },
)
User = Annotated[
    str | None,
    Header(
        alias="X-Pointsman-User",
        description="On whose behalf the change is made. With auth on, the audit log and "
        "route history record the API key's name, followed by `(for <this>)` when given.",
    ),
]


def who(request: Request, user: str | None) -> str:
    """Who makes a change: the key's name (auth on), else the header, else `api`."""
    client = client_of(request)
    if client is None:
        return user or "api"
    if user and user != client:
        return f"{client} (for {user[:48]})"
    return client


MAX_VERSION = 2**31 - 1  # the store's column: a larger number cannot name a version
# Held to the store's range here (past it the store cannot even look); 0 or less is the
# handler's answer naming the versions there are.
Version = Annotated[int, Field(ge=-MAX_VERSION, le=MAX_VERSION, json_schema_extra={"minimum": 1})]


def checked(**schema: Any) -> Any:
    """JSON Schema for a constraint the handler checks itself, with a message saying what
    to write (pydantic's would quote the pattern): documented, not enforced twice."""
    return {"json_schema_extra": schema}


NOT_BLANK = checked(pattern=r"\S")  # a field name: not empty, not only spaces


class Body(BaseModel):
    """A request body: unknown fields are refused, so that a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ArmIn(Body):
    """A primary version and its share of traffic in percent."""

    version: Version
    weight: int = Field(100, **checked(minimum=0, maximum=100))


class ShadowIn(Body):
    """A version that gets a copy of `sample` (0..1] of the traffic after the answer."""

    version: Version
    sample: float = Field(1.0, **checked(exclusiveMinimum=0, maximum=1))


Mode = Literal["reject", "flag", "allow"]


class ValidationIn(Body):
    """What to do with inputs unlike the training data; unset modes take each rule's default."""

    mode: Mode | None = None
    coerce: Mode | None = None
    features: dict[str, Mode] = {}
    tolerance: float = Field(0.1, ge=0, le=10)

    def policy(self) -> ValidationPolicy:
        return ValidationPolicy(
            self.mode, self.coerce, tuple(sorted(self.features.items())), self.tolerance
        )


SIGNATURE_CHANGE = (
    "Bring in a version whose inputs differ from the primary's (otherwise refused with 409 "
    "incompatible_signature and the diff); recorded in the audit log."
)


class AgreementIn(Body):
    """When a shadow's answer agrees with the primary's (docs/release-gates.md)."""

    abs_tol: float = Field(1e-6, ge=0)
    rel_tol: float = Field(0.01, ge=0)
    prob_tol: float | None = Field(None, ge=0, le=1)


class PolicyIn(Body):
    """A whole traffic policy: a field left out is cleared or takes its default."""

    arms: list[ArmIn] = Field(description="Weights summing to 100.", **checked(minItems=1))
    key: str | None = Field(None, **NOT_BLANK)
    shadows: list[ShadowIn] = []
    fallback: Version | None = None
    timeout_ms: int | None = Field(None, **checked(minimum=1, maximum=600_000))
    breaker_failures: int = Field(5, **checked(minimum=1))
    breaker_pause_s: float = 30.0
    validation: ValidationIn = ValidationIn()
    outcome_key: str | None = Field(None, **NOT_BLANK)
    agreement: AgreementIn = AgreementIn()
    reason: str = ""
    allow_signature_change: bool = Field(False, description=SIGNATURE_CHANGE)
    expect_revision: int | None = Field(
        None, description="Refuse (409) unless this is the revision in force."
    )


class VersionIn(Body):
    """Which version, and why (kept in the route history)."""

    version: Version
    reason: str = ""
    allow_signature_change: bool = Field(False, description=SIGNATURE_CHANGE)


class ReasonIn(Body):
    """Why (kept in the route history)."""

    reason: str = ""


class CanaryIn(Body):
    """A canary plan: the candidate's share at each step, and how long each step holds."""

    version: Version
    steps: list[Annotated[int, Field(**checked(minimum=1, maximum=100))]] = Field(
        [5, 25, 50, 100], description="Percent, rising strictly.", **checked(minItems=1)
    )
    hold_requests: int = Field(500, ge=0)
    hold_s: float = Field(120.0, ge=0)
    quality_gate: str | None = Field(
        None,
        description='Quality gate on outcomes, e.g. "auc >= primary - 0.01".',
        **checked(pattern=GATE),
    )
    min_outcomes: int = Field(200, ge=1, description="Outcomes per arm before it may fail.")
    allow_signature_change: bool = Field(False, description=SIGNATURE_CHANGE)


@router.get("", summary="List models, their versions and what is deployed")
def list_models(request: Request) -> list[dict[str, Any]]:
    return [s.to_json() for s in project_of(request).registry.list_models()]


@router.get("/{model}/versions", summary="List the versions of a model")
def list_versions(request: Request, model: str) -> list[dict[str, Any]]:
    out = []
    for record in project_of(request).registry.list_versions(model):
        data = record.to_json()
        data.pop("profile", None)
        data.pop("input_example", None)
        out.append(data)
    return out


class AboutIn(Body):
    """What a model is for: shown and searched in the console's catalogue."""

    description: str = Field("", max_length=MAX_DESCRIPTION)
    owner: str = Field("", max_length=128)
    tags: list[Annotated[str, Field(pattern=TAG)]] = Field([], max_length=MAX_TAGS)


@router.get("/{model}/about", summary="A model's description, owner and tags")
def get_about(request: Request, model: str) -> dict[str, Any]:
    return load_about(project_of(request).engine, model).to_json()


@router.put("/{model}/about", summary="Replace a model's description, owner and tags")
def put_about(request: Request, model: str, body: AboutIn, user: User = None) -> dict[str, Any]:
    about = check_about(body.description, body.owner, body.tags)
    return save_about(project_of(request).engine, model, about, who(request, user)).to_json()


@router.get("/{model}/route", summary="The route revision in force")
def get_route(request: Request, model: str) -> dict[str, Any]:
    return project_of(request).routes.get(model).to_json()


@router.put("/{model}/route", summary="Replace the traffic policy (a new route revision)")
def put_route(request: Request, model: str, body: PolicyIn, user: User = None) -> dict[str, Any]:
    routes = project_of(request).routes
    in_force = routes.find(model)
    policy = Policy(
        arms=tuple(Arm(a.version, a.weight) for a in body.arms),
        key=body.key,
        shadows=tuple(Shadow(s.version, s.sample) for s in body.shadows),
        fallback=body.fallback,
        timeout_ms=body.timeout_ms,
        breaker_failures=body.breaker_failures,
        breaker_pause_s=body.breaker_pause_s,
        validation=body.validation.policy(),
        outcome_key=body.outcome_key,
        agreement=Agreement(**body.agreement.model_dump()),
        # An ended canary stays on record; a running one makes `apply` refuse.
        canary=in_force.policy.canary if in_force else None,
    )
    change = routes.apply(
        model, policy, who(request, user), body.reason, expect_revision=body.expect_revision,
        allow_signature_change=body.allow_signature_change,
    )  # fmt: skip
    return change.to_json()


@router.get("/{model}/route/history", summary="Every route revision, with what changed")
def route_history(request: Request, model: str) -> list[dict[str, Any]]:
    return history_json(project_of(request).routes.history(model))


@router.post("/{model}/deploy", summary="Make one version the sole primary")
def deploy(request: Request, model: str, body: VersionIn, user: User = None) -> dict[str, Any]:
    routes = project_of(request).routes
    allow = body.allow_signature_change
    by = who(request, user)
    return routes.deploy(
        model, body.version, by, body.reason, allow_signature_change=allow
    ).to_json()


@router.post("/{model}/promote", summary="Make a version the sole primary, ending its canary")
def promote(request: Request, model: str, body: VersionIn, user: User = None) -> dict[str, Any]:
    routes = project_of(request).routes
    allow = body.allow_signature_change
    by = who(request, user)
    change = routes.promote(model, body.version, by, body.reason, allow_signature_change=allow)
    return change.to_json()


@router.post("/{model}/rollback", summary="Put the previous route revision back in force")
def rollback(
    request: Request, model: str, body: ReasonIn | None = None, user: User = None
) -> dict[str, Any]:
    reason = body.reason if body else ""
    return project_of(request).routes.rollback(model, who(request, user), reason).to_json()


@router.post("/{model}/canary", summary="Start a canary of a version")
def start_canary(request: Request, model: str, body: CanaryIn, user: User = None) -> dict[str, Any]:
    change = project_of(request).routes.start_canary(
        model,
        body.version,
        body.steps,
        who(request, user),
        hold_requests=body.hold_requests,
        hold_s=body.hold_s,
        gates=quality_gates(body.quality_gate, body.min_outcomes),
        allow_signature_change=body.allow_signature_change,
    )
    return change.to_json()


def quality_gates(text: str | None, min_outcomes: int) -> Gates | None:
    """The canary's gates with a quality gate (checked: 400 with the form to write)."""
    if text is None:
        return None
    QualityGate.parse(text)
    return Gates(quality=text.strip(), min_outcomes=min_outcomes)


@router.get("/{model}/canary", summary="The canary: state, step, window figures per arm")
def get_canary(request: Request, model: str) -> dict[str, Any]:
    project = project_of(request)
    route = project.routes.get(model)
    return {"model": model, "revision": route.revision, **canary_status(project.engine, route)}


@router.delete("/{model}/canary", summary="Abort the running canary")
def abort_canary(
    request: Request,
    model: str,
    reason: Annotated[str, Query(description="Why, kept in the route history.")] = "",
    user: User = None,
) -> dict[str, Any]:
    by = who(request, user)
    routes = project_of(request).routes
    return routes.end_canary(model, "aborted", reason or f"aborted by {by}", by).to_json()


def routes() -> list[BaseRoute]:
    return list(router.routes)
