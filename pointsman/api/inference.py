"""The one inference endpoint, served for every protocol over that protocol's codec.

read → decode (the codec) → predict (the pipeline) → encode (the codec), with the request's
`Outcome` recorded in the metrics whatever happens. The protocol modules keep only their
metadata, status and readiness endpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.access import client_of
from pointsman.api.common import (
    answer,
    catalog_of,
    pipeline_of,
    prediction_response,
    read_body,
)
from pointsman.api.errors import is_usable_request_id, request_id_of
from pointsman.api.headers import header
from pointsman.catalog import Catalog
from pointsman.errors import TooManyRows
from pointsman.monitoring import metrics
from pointsman.monitoring.logs import bind
from pointsman.protocols import CODECS, Codec, Decoded, Payload
from pointsman.types import Outcome


async def infer(request: Request, rid: str, *, codec: Codec, outcome: Outcome) -> Response:
    """Answer one inference request in `codec`'s protocol."""
    catalog, pipeline = catalog_of(request), pipeline_of(request)
    settings = pipeline.settings
    params = request.path_params
    model = params.get("model") or catalog.default_model(settings.default_model)
    routing_key = header(request.scope, b"x-routing-key")
    target = catalog.target(model, params.get("version"), routing_key)
    payload = Payload(codec, await read_body(request, settings.max_body_bytes), request.headers)
    decoded = payload.decoded_for(target.signature)
    if decoded.frame.n_rows > settings.max_rows_per_request:
        raise TooManyRows(decoded.frame.n_rows, settings.max_rows_per_request)
    prediction = await pipeline.predict(
        target,
        payload,
        outcome,
        request_id=_request_id(request, rid, decoded),
        client=client_of(request),
    )
    return prediction_response(codec.encode(prediction, decoded), prediction)


def _request_id(request: Request, rid: str, decoded: Decoded) -> str:
    """One id per request: the caller's X-Request-ID, else the id in the body (V2), else ours.

    A V2 body's `id` is echoed in the response body as the protocol asks; it is the request
    id too unless the caller also sent an X-Request-ID, which then wins in the header and
    the prediction record, or it cannot be one (a header holds only ASCII).
    """
    given = decoded.request_id
    if given and is_usable_request_id(given) and header(request.scope, b"x-request-id") is None:
        request.state.request_id = given
        bind(request_id=given)
        return given
    return rid


def inference_endpoint(codec: Codec) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one protocol: `infer`, timed and counted in the metrics."""

    async def endpoint(request: Request) -> Response:
        outcome = Outcome(codec.name)
        handler = functools.partial(infer, codec=codec, outcome=outcome)
        status = 500
        metrics.INFLIGHT.inc()
        try:
            response = await answer(request, request_id_of(request), handler, codec)
            status = response.status_code
            return response
        finally:
            metrics.INFLIGHT.dec()
            _count(request, outcome, status)

    endpoint.__name__ = f"{codec.name}_infer"
    return endpoint


def _count(request: Request, outcome: Outcome, status: int) -> None:
    model = outcome.model or known_model(request, catalog_of(request))
    version = "" if outcome.version is None else str(outcome.version)
    recorder = pipeline_of(request).request_metrics
    recorder.client_answered(model, client_of(request), status)
    recorder.answered(
        model, version, outcome.role or "", outcome.protocol, status, outcome.elapsed_s(),
        outcome.model_s, outcome.rows,
    )  # fmt: skip


def known_model(request: Request, catalog: Catalog) -> str:
    """The model in the path when the catalog knows it: never an unbounded label value."""
    model = request.path_params.get("model")
    return model if model is not None and model in catalog.snapshot.versions else ""


def routes() -> list[BaseRoute]:
    """Every protocol's inference paths (POST)."""
    out: list[BaseRoute] = []
    for codec in CODECS:
        endpoint = inference_endpoint(codec)
        out += [Route(path, endpoint, methods=["POST"]) for path in codec.paths]
    return out
