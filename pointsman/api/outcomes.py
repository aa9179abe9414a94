"""POST /v1/models/{model}/outcomes: the true values of predictions, arriving later.

Needs `outcome:<model>` (or admin). A plain `def`: FastAPI runs the store writes in its
threadpool, off the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from pointsman.api.access import client_of
from pointsman.api.admin import ErrorOut
from pointsman.api.common import project_of
from pointsman.logstore.outcomes import MAX_OUTCOMES, parse_outcomes, store_outcomes

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


def routes() -> list[BaseRoute]:
    return list(router.routes)
