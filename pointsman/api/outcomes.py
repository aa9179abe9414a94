"""POST /v1/models/{model}/outcomes: the true values of predictions, arriving later.

Needs `outcome:<model>` (or admin). A plain `def`: FastAPI runs the store writes in its
threadpool, off the event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.routing import BaseRoute

from pointsman.api.access import client_of
from pointsman.api.admin import MAX_VERSION, ErrorOut
from pointsman.api.common import project_of
from pointsman.api.openapi import TIME_PARAM
from pointsman.logstore.outcomes import MAX_OUTCOMES, MAX_ROW, parse_outcomes, store_outcomes
from pointsman.logstore.query import ROLES, SPAN, TIME_FORMS, parse_span, parse_time
from pointsman.monitoring.quality import QualityQuery, quality_report

router = APIRouter(
    prefix="/v1/models",
    tags=["outcomes"],
    responses={
        400: {
            "model": ErrorOut,
            "description": "An outcome that names no prediction (outcome_without_key: the "
            "route names no such outcome key) or value",
        },
        404: {"model": ErrorOut, "description": "Unknown model"},
    },
)


# A span back from now, an ISO time, or null (now).
TIME: dict[str, Any] = {"anyOf": [*TIME_PARAM["anyOf"], {"type": "null"}]}


class OutcomeIn(BaseModel):
    """One true value, by `request_id` (and `row`) or by the route's outcome key (another
    field, e.g. `customer_id`); `time` when it was observed (default: now)."""

    model_config = ConfigDict(extra="allow")

    request_id: str | None = None
    row: StrictInt | None = Field(None, ge=0, le=MAX_ROW, description="Row of the request.")
    outcome: Any = Field(json_schema_extra={"not": {"enum": [None, ""]}})
    time: str | None = Field(None, json_schema_extra=TIME)


class OutcomesIn(BaseModel):
    """Outcomes: each `{"request_id": ..., "row": 0, "outcome": ...}` or, when the route
    names an outcome key, `{"customer_id": ..., "outcome": ...}`; `time` optional."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(max_length=MAX_OUTCOMES)


@router.post("/{model}/outcomes", summary="Store the true values of earlier predictions")
def post_outcomes(request: Request, model: str, body: OutcomesIn) -> dict[str, Any]:
    """Idempotent: the same key again replaces its value or changes nothing."""
    project = project_of(request)
    project.registry.version_numbers(model)  # ModelNotFound (404) names the models
    route = project.routes.find(model)
    outcome_key = route.policy.outcome_key if route is not None else None
    items = [o.model_dump(exclude_unset=True) for o in body.outcomes]
    parsed = parse_outcomes(items, outcome_key)
    counts = store_outcomes(project.engine, model, parsed, client_of(request))
    return {"model": model, **counts}


quality_router = APIRouter(
    prefix="/v1/admin/models",
    tags=["admin"],
    responses={
        400: {"model": ErrorOut, "description": "A time or window that cannot be read"},
        404: {"model": ErrorOut, "description": "Unknown model"},
    },
)


@quality_router.get("/{model}/quality", summary="Quality against outcomes, per version and window")
def get_quality(
    request: Request,
    model: str,
    since: Annotated[str, Query(description=f"From: {TIME_FORMS}.")] = "7d",
    until: Annotated[str | None, Query(description=f"Before: {TIME_FORMS}.")] = None,
    # The pattern and enum document what the handler reads; others are its 400 naming them.
    window: Annotated[
        str | None,
        Query(description="Window length, e.g. 1d.", json_schema_extra={"pattern": SPAN}),
    ] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    role: Annotated[
        str | None, Query(description=", ".join(ROLES), json_schema_extra={"enum": list(ROLES)})
    ] = None,
) -> dict[str, Any]:
    """Accuracy, log loss, AUC, calibration (classifiers) or MAE, RMSE, bias (regressors)."""
    project = project_of(request)
    project.registry.version_numbers(model)
    now = datetime.now(UTC)
    query = QualityQuery(
        model,
        parse_time("since", since, now),
        parse_time("until", until, now) if until else now,
        parse_span("window", window).total_seconds() if window else None,
        version,
        role,
    )
    return quality_report(project.engine, project.routes, query)


def routes() -> list[BaseRoute]:
    return list(router.routes) + list(quality_router.routes)
