"""GET /v1/predictions: the prediction log, filtered, newest first, one cursor page at a time.

Reads the store (what the shippers have delivered, normally within a second or two); a plain
`def`, so FastAPI runs the query in its threadpool, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.routing import BaseRoute

from pointsman.api.admin import MAX_VERSION, ErrorOut
from pointsman.api.common import project_of
from pointsman.logstore import LogQuery, find_predictions
from pointsman.logstore.outcomes import attach_outcomes
from pointsman.logstore.query import MAX_LIMIT, TIME_FORMS, parse_time

router = APIRouter(
    prefix="/v1/predictions",
    tags=["prediction log"],
    responses={
        400: {"model": ErrorOut, "description": "A filter or cursor that cannot be read"},
        422: {"model": ErrorOut, "description": "A parameter of the wrong type"},
    },
)


@router.get("", summary="Prediction records, newest first")
def list_predictions(
    request: Request,
    model: str | None = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    role: Annotated[
        str | None,
        # The enum documents what the handler reads; a wrong role is its 400 naming them.
        Query(
            description="primary, fallback, pinned or shadow.",
            json_schema_extra={"enum": ["primary", "fallback", "pinned", "shadow"]},
        ),
    ] = None,
    since: Annotated[str | None, Query(description=f"From: {TIME_FORMS}.")] = None,
    until: Annotated[str | None, Query(description=f"Before: {TIME_FORMS}.")] = None,
    request_id: str | None = None,
    has_error: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(description="`cursor` of the previous page.")] = None,
) -> dict[str, Any]:
    """Records matching every filter given, with the `outcomes` sent for each request id;
    pass `cursor` back for the next page."""
    query = LogQuery(
        model=model,
        version=version,
        role=role,
        since=parse_time("since", since) if since is not None else None,
        until=parse_time("until", until) if until is not None else None,
        request_id=request_id,
        has_error=has_error,
    )
    engine = project_of(request).engine
    page = find_predictions(engine, query, limit, cursor)
    attach_outcomes(engine, page.records)
    return {"predictions": page.records, "cursor": page.cursor}


def routes() -> list[BaseRoute]:
    return list(router.routes)
