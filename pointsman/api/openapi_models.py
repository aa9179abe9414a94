"""`GET /openapi.json`: the app's document, plus each deployed model's predict paths.

The document of api/openapi.py is built once and names no model. A caller presenting a valid
key also gets, for each deployed model it may predict with or read, that model's paths in
every protocol with its request body (api/predict_schemas.py, from the version answering
now); bare /invocations gets the default model's. The templated paths then exclude those
models by name: a model's body is the one its own path shows. Model names and training
statistics are not for anyone who can merely reach the port.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pointsman.api import access
from pointsman.api.openapi import complete, predict_content
from pointsman.api.predict_schemas import answer_schema, model_body
from pointsman.auth.scopes import covers
from pointsman.catalog import Catalog
from pointsman.errors import PointsmanError
from pointsman.protocols import CODECS

Visible = Callable[[str], bool]
BARE = "/invocations"  # MLflow's path for the default model


def openapi_with_models(app: FastAPI, visible: Visible) -> Any:
    """The app's document (built once) plus the paths of the deployed models `visible` allows."""
    document = copy.deepcopy(app.openapi())
    catalog: Catalog | None = getattr(app.state, "catalog", None)
    if catalog is None:
        return document
    settings = app.state.pipeline.settings
    max_rows = settings.max_rows_per_request
    models = []
    paths: dict[str, Any] = document.setdefault("paths", {})
    for model in filter(visible, catalog.deployed_models()):
        try:
            operations = model_operations(catalog, model, max_rows)
        except PointsmanError:  # undeployed since the catalog listed it: left out
            continue
        models.append(model)
        for path, operation in operations:
            paths[path] = {"post": operation}
    default = _default_model(catalog, settings.default_model)
    if default in models:
        bare = paths[BARE]["post"]
        operation = paths[f"/v1/models/{default}{BARE}"]["post"]
        bare["requestBody"] = operation["requestBody"]
        bare["summary"] = f"Predict with {default}, the default model, in MLflow's protocol"
    if models:
        _exclude(paths, models)
    return document


def model_operations(catalog: Catalog, model: str, max_rows: int) -> list[tuple[str, Any]]:
    """(path, POST operation) of each protocol's predict path of `model`."""
    target = catalog.target(model)
    version = target.version
    out = []
    for codec in CODECS:
        for template in codec.paths:
            if "{model}" not in template or "{version}" in template:
                continue
            path = template.replace("{model}", model)
            body = model_body(codec.name, target.signature, version.profile, max_rows)
            operation: dict[str, Any] = {
                "tags": ["models"],
                "summary": f"Predict with {model} in the {codec.name} protocol "
                f"(version {version.number} answers now)",
                "operationId": f"{codec.name}_predict_{model}",
                "requestBody": {"required": True, "content": predict_content(codec.name, body)},
                "responses": {
                    "200": {
                        "description": "The predictions, and which version made them",
                        "content": {"application/json": {"schema": answer_schema(codec.name)}},
                    }
                },
            }
            example = (version.input_example or [])[:1]
            if example and codec.name == "native":
                operation["requestBody"]["content"]["application/json"]["example"] = {
                    "rows": example
                }
            complete(operation, access.ACCESS[("POST", template)], is_predict=True)
            out.append((path, operation))
    return out


def _default_model(catalog: Catalog, configured: str) -> str | None:
    try:
        return catalog.default_model(configured)
    except PointsmanError:
        return None


def _exclude(paths: dict[str, Any], models: list[str]) -> None:
    """On the templated predict paths, `{model}` names none of `models` (they have their own)."""
    templates = {path for codec in CODECS for path in codec.paths if "{model}" in path}
    for path in templates & set(paths):
        for parameter in paths[path]["post"].get("parameters", []):
            if parameter["name"] == "model":
                parameter["schema"] = {**parameter["schema"], "not": {"enum": models}}


def openapi_route(app: FastAPI, gate: access.Gate) -> Route:
    """`GET /openapi.json`, open; a caller presenting a valid key also gets the predict paths
    of each deployed model it may predict with or read."""

    async def endpoint(request: Request) -> Response:
        visible: Visible = lambda model: False  # noqa: E731
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
