"""POST /v1/models/{model}/outcomes: the true values of predictions, arriving later.

Needs `outcome:<model>` (or admin). A plain `def`: FastAPI runs the store writes in its
threadpool, off the event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from pointsman.api.access import client_of
from pointsman.api.admin import ErrorOut
from pointsman.api.common import project_of
from pointsman.logstore.outcomes import MAX_OUTCOMES, parse_outcomes, store_outcomes
from pointsman.logstore.query import ROLES, TIME_FORMS, parse_span, parse_time
from pointsman.monitoring.quality import QualityQuery, quality_report

router = APIRouter(
    prefix="/v1/models",
    tags=["outcomes"],
    responses={
        400: {"model": ErrorOut, "description": "An outcome that names no prediction or value"},
        404: {"model": ErrorOut, "description": "Unknown model"},
    },
)


class OutcomesIn(BaseModel):
    """Outcomes: each `{"request_id": ..., "row": 0, "outcome": ...}` or, when the route
    names an outcome key, `{"customer_id": ..., "outcome": ...}`; `time` optional."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[dict[str, Any]] = Field(max_length=MAX_OUTCOMES)


@router.post("/{model}/outcomes", summary="Store the true values of earlier predictions")
def post_outcomes(request: Request, model: str, body: OutcomesIn) -> dict[str, Any]:
    """Idempotent: the same key again replaces its value or changes nothing."""
    project = project_of(request)
    project.registry.version_numbers(model)  # ModelNotFound (404) names the models
    route = project.routes.find(model)
    outcome_key = route.policy.outcome_key if route is not None else None
    parsed = parse_outcomes(body.outcomes, outcome_key)
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
    window: Annotated[str | None, Query(description="Window length, e.g. 1d.")] = None,
    version: int | None = None,
    role: Annotated[str | None, Query(description=", ".join(ROLES))] = None,
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
