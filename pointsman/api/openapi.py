"""The app's OpenAPI document: every route in it, every answer it can give documented.

FastAPI documents only its own routes, and only their 200 and 422. The predict endpoints,
health, metadata and /metrics are plain Starlette routes (no per-request dependency
solving), and every endpoint behind a key may also answer 401, 403 and 429, and any
endpoint a PointsmanError. `build_openapi` adds them, from the same access table that
decides who may call what, so the document cannot drift from the gate.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from pointsman.api.access import Access
from pointsman.api.predict_schemas import answer_schema, generic_body
from pointsman.logstore.query import SPAN

ERROR = {"$ref": "#/components/schemas/Error"}
ANY_JSON: dict[str, Any] = {}
# Status → what it means, for every endpoint that may give it.
COMMON = {
    "400": "The request cannot be read (the error names where it broke).",
    "404": "No such model, version or object (the error lists the known ones).",
    "405": "Method not allowed here (the Allow header lists the allowed ones).",
    "413": "The body is larger than max_body_bytes.",
    "415": "The body's media type is not one this endpoint reads.",
    "422": "The request is well-formed but refused (the error names each field).",
    "500": "Internal error; the request id is in the answer and the server log.",
    "503": "Not ready, overloaded, or the store or a runner is unavailable.",
}
KEYED = {
    "401": "No API key, or an invalid, revoked or expired one (WWW-Authenticate says which).",
    "403": "The key lacks the scope this endpoint needs (named in the error).",
    "429": "Past the key's rate limit; Retry-After says when to come back.",
}
PREDICT = {
    "409": "The route changed under the request; retry.",
    "504": "Past the route's or the runner's time limit, with no fallback.",
}
# `since` and `until` are read as a span back from now or an ISO time (logstore/query.py).
TIME_PARAM = {
    "anyOf": [{"type": "string", "pattern": SPAN}, {"type": "string", "format": "date-time"}]
}
# Plain routes that answer text, as MLflow and Prometheus clients expect.
TEXT_PATHS = {
    "/metrics": "Prometheus text exposition",
    "/ping": "MLflow's liveness probe",
    "/health": "MLflow's liveness probe",
    "/version": "the pointsman version",
}


def build_openapi(
    app: FastAPI, table: dict[tuple[str, str], Access], max_rows: int
) -> dict[str, Any]:
    """The whole document: FastAPI's routes, the plain ones, and every answer documented."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    paths: dict[str, Any] = doc.setdefault("paths", {})
    for route in app.routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        if route.path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operations = paths.setdefault(route.path, {})
            if method.lower() not in operations:
                access = table.get((method, route.path))
                codec = None if access is None else access.codec
                protocol = None if codec is None else codec.name
                operations[method.lower()] = plain_operation(route, method, protocol, max_rows)
    for path, operations in paths.items():
        for method, operation in operations.items():
            access = table.get((method.upper(), path))
            complete(operation, access, is_predict=access is not None and access.kind == "predict")
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
    }
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    return doc


def plain_operation(
    route: Route, method: str, protocol: str | None, max_rows: int
) -> dict[str, Any]:
    """An operation for a Starlette route: its docstring, path parameters, a JSON answer;
    a predict route's body and answer in its protocol's shape."""
    doc = inspect.getdoc(route.endpoint) or route.name or route.path
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0],
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', route.path).strip('_')}",
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ANY_JSON}}}
        },
    }
    names = re.findall(r"{([^}:]+)(?::[^}]*)?}", route.path)
    if names:
        operation["parameters"] = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            }
            for n in names
        ]
    if protocol is not None:
        body = {
            **generic_body(protocol, max_rows),
            "description": "The protocol's body for any model; each model's inputs are at "
            "GET /v1/models/{model} (and, asked with a key, in its own paths here).",
        }
        content = predict_content(protocol, body, with_csv=True)
        operation["requestBody"] = {"required": True, "content": content}
        operation["responses"]["200"] = {
            "description": "The predictions",
            "content": {"application/json": {"schema": answer_schema(protocol)}},
        }
    if route.path in TEXT_PATHS:
        operation["responses"]["200"] = {
            "description": TEXT_PATHS[route.path],
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    return operation


def predict_content(
    protocol: str, schema: dict[str, Any], *, with_csv: bool = False
) -> dict[str, Any]:
    """The media types a predict body may come in: JSON, and CSV for MLflow's paths when
    `with_csv` (its grammar is no JSON Schema: a model's own paths list JSON only)."""
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if protocol == "mlflow" and with_csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return content


def complete(operation: dict[str, Any], access: Access | None, *, is_predict: bool) -> None:
    """Document every answer the operation can give, and the key it needs."""
    responses = operation.setdefault("responses", {})
    keyed = access is None or access.kind != "open"
    extra = {**COMMON, **(KEYED if keyed else {}), **(PREDICT if is_predict else {})}
    for status, description in extra.items():
        responses.setdefault(
            status, {"description": description, "content": {"application/json": {"schema": ERROR}}}
        )
    if "405" in responses:
        responses["405"]["headers"] = {"Allow": {"schema": {"type": "string"}}}
    if keyed:
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query" and parameter.get("name") in ("since", "until"):
            parameter["schema"] = TIME_PARAM
