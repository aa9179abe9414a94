"""The console's ties to the API: "try it" calls the native predict endpoint in-process as
the signed-in client, and the OpenAPI document lists each deployed model's predict paths."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from pointsman.api import access, inference
from pointsman.auth.scopes import covers
from pointsman.errors import PointsmanError
from pointsman.protocols import CODECS
from pointsman.types import Signature
from pointsman.ui import Invoke

NATIVE = next(c for c in CODECS if c.name == "native")


def invoker(app: FastAPI) -> Invoke:
    """Call `POST /v1/models/{model}/predict` through the real endpoint (decode, validate,
    route, log, metrics), as `client`: the console checked its predict scope already."""
    endpoint = inference.inference_endpoint(NATIVE)

    async def invoke(model: str, body: bytes, client: str) -> tuple[int, Any]:
        path = f"/v1/models/{model}/predict"
        scope = {
            "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "http_version": "1.1", "scheme": "http",
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "server": ("127.0.0.1", 0), "client": ("127.0.0.1", 0), "app": app,
            "path_params": {"model": model}, "state": {"client": client},
        }  # fmt: skip
        sent: list[Message] = []
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Message:
            return pending.pop() if pending else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)
        status = next(int(m["status"]) for m in sent if m["type"] == "http.response.start")
        raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, raw.decode("utf-8", "replace")

    return invoke


JSON_TYPES = {
    "double": {"type": "number"},
    "float": {"type": "number"},
    "long": {"type": "integer"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
}


def row_schema(signature: Signature, profile: dict[str, Any] | None) -> dict[str, Any]:
    """One input row as JSON Schema: types, training ranges and categories as descriptions."""
    features = (profile or {}).get("features", {})
    properties: dict[str, Any] = {}
    for column in signature.inputs:
        schema: dict[str, Any] = dict(JSON_TYPES.get(column.type, {}))
        if column.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]} if schema else {}
        stats = features.get(column.name, {})
        if "min" in stats:
            schema["description"] = f"training range {stats['min']:g} … {stats['max']:g}"
        elif stats.get("categories"):
            schema["description"] = "training categories: " + ", ".join(stats["categories"])
        properties[column.name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": [c.name for c in signature.inputs if not c.nullable],
    }


def model_paths(app: FastAPI, visible: Callable[[str], bool]) -> dict[str, Any]:
    """The native predict path of each deployed model `visible` allows, with its primary's
    input schema."""
    catalog = getattr(app.state, "catalog", None)
    if catalog is None:
        return {}
    paths: dict[str, Any] = {}
    for model in catalog.deployed_models():
        if not visible(model):
            continue
        version = catalog.get_version(model)
        rows = {"type": "array", "items": row_schema(version.signature, version.profile)}
        example = {"rows": (version.input_example or [])[:1]}
        outputs: dict[str, Any] = {
            "predictions": {"type": "array"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "request_id": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "object"}},
        }
        if version.signature.classes is not None:
            outputs["probabilities"] = {"type": "array", "items": {"type": "object"}}
        paths[f"/v1/models/{model}/predict"] = {
            "post": {
                "tags": ["models"],
                "summary": f"Predict with {model} (version {version.number} answers now)",
                "operationId": f"predict_{model}",
                "security": [{"apiKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"rows": rows},
                                "required": ["rows"],
                            },
                            "example": example,
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The predictions, and which version made them",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": outputs}
                            }
                        },
                    },
                    **{
                        str(code): {"$ref": f"#/components/responses/E{code}"}
                        for code in (400, 401, 403, 404, 422, 429, 503)
                    },
                },
            }
        }
    return paths


ERRORS = {
    400: "Malformed body", 401: "No valid key", 403: "The key lacks predict:MODEL",
    404: "Unknown model or version", 422: "Inputs refused (each field named)",
    429: "Past the key's rate", 503: "Not deployed or not ready",
}  # fmt: skip


def openapi_with_models(app: FastAPI, visible: Callable[[str], bool]) -> Any:
    """FastAPI's document (built once) plus the paths of the deployed models `visible` allows."""
    base = app.openapi()  # built once (api/openapi.py), every protocol's paths in it
    document = copy.deepcopy(base)
    document.setdefault("paths", {}).update(model_paths(app, visible))
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})["apiKey"] = {"type": "http", "scheme": "bearer"}
    error = {"type": "object", "properties": {"error": {"type": "string"},
                                              "code": {"type": "string"}}}  # fmt: skip
    components.setdefault("responses", {}).update(
        {
            f"E{code}": {"description": text, "content": {"application/json": {"schema": error}}}
            for code, text in ERRORS.items()
        }
    )
    return document


def openapi_route(app: FastAPI, gate: access.Gate) -> Route:
    """`GET /openapi.json`, open as before; a caller presenting a valid key also gets the
    predict path of each deployed model it may predict with or read (model names, inputs and
    training ranges are not for anyone who can reach the port)."""

    async def endpoint(request: Request) -> Response:
        visible: Callable[[str], bool] = lambda model: False  # noqa: E731
        presented = access.presented_key(request.scope)
        if presented and gate.keys is not None:
            try:
                client = gate.keys.authenticate(presented, time.time())
            except PointsmanError:
                client = None
            if client is not None:
                scopes = client.scopes
                visible = lambda m: covers(scopes, f"predict:{m}") or covers(scopes, f"read:{m}")  # noqa: E731
        elif not gate.enabled:
            visible = lambda model: True  # noqa: E731
        return JSONResponse(openapi_with_models(app, visible))

    return Route(app.openapi_url or "/openapi.json", endpoint, methods=["GET"],
                 include_in_schema=False)  # fmt: skip


def use_openapi_route(app: FastAPI, gate: access.Gate) -> None:
    """Replace FastAPI's own /openapi.json route with `openapi_route`."""
    path = app.openapi_url or "/openapi.json"
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, Route) and route.path == path:
            routes[i] = openapi_route(app, gate)
