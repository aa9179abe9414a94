"""`GET /openapi.json`: the app's document, plus each deployed model's predict paths.

The document of api/openapi.py is built once and names no model. A caller presenting a valid
key also gets, for each deployed model it may predict with or read, that model's paths in
every protocol with its request body and examples (api/model_schemas.py, model_examples.py):
the model's own paths from the version answering now, and each version's pinned paths
(`…/versions/<n>/…`) from that version's signature; bare /invocations gets the default
model's. The templated paths then exclude those models by name: a model's body is the one
its own path shows. Model names and training statistics are not for anyone who can merely
reach the port.

Cheap per request: the parts are built from one catalog snapshot (a model undeployed
meanwhile is in it whole or not at all), and each version's parts are kept, as versions
never change; the base document is shared, never copied whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pointsman.api import access
from pointsman.api.model_examples import csv_example, json_examples
from pointsman.api.model_schemas import VersionSchemas
from pointsman.api.openapi import complete
from pointsman.api.predict_schemas import answer_schema
from pointsman.auth.scopes import covers
from pointsman.catalog import Catalog, with_key
from pointsman.errors import PointsmanError
from pointsman.protocols import CODECS
from pointsman.registry import VersionRecord
from pointsman.routing import Route as ModelRoute
from pointsman.types import Signature
from pointsman.ui.snippets import example_row

Visible = Callable[[str], bool]
BARE = "/invocations"  # MLflow's path for the default model
MAX_KEPT = 2048  # versions' parts kept; past it the store of them starts again


@dataclass(frozen=True)
class Parts:
    """One version's paths (path → POST operation) and the schemas they refer to."""

    paths: dict[str, Any]
    schemas: dict[str, Any]


Kept = dict[tuple[Any, ...], Parts]


def openapi_with_models(app: FastAPI, visible: Visible, kept: Kept) -> Any:
    """The app's document (built once) plus the paths of the deployed models `visible` allows;
    `kept` holds the versions' parts from one call to the next."""
    base = app.openapi()
    catalog: Catalog | None = getattr(app.state, "catalog", None)
    if catalog is None:
        return base
    settings = app.state.pipeline.settings
    if len(kept) > MAX_KEPT:
        kept.clear()
    snapshot = catalog.snapshot  # replaced whole on refresh: one consistent view
    paths = dict(base["paths"])
    schemas = dict(base["components"]["schemas"])
    models = []
    for model in filter(visible, sorted(snapshot.routes)):
        route, versions = snapshot.routes[model], snapshot.versions.get(model, {})
        primary = versions.get(route.primary)
        if primary is None:  # its versions gone from the store with it: left out
            continue
        models.append(model)
        found = [model_parts(kept, primary, route, settings.max_rows_per_request)]
        found += [
            model_parts(kept, versions[n], None, settings.max_rows_per_request)
            for n in sorted(versions)
        ]
        for parts in found:
            paths.update(parts.paths)
            schemas.update(parts.schemas)
    default = _default_model(catalog, settings.default_model)
    if default in models:
        bare = paths[BARE]["post"]
        operation = paths[f"/v1/models/{default}{BARE}"]["post"]
        paths[BARE] = {
            **paths[BARE],
            "post": {
                **bare,
                "requestBody": operation["requestBody"],
                "summary": f"Predict with {default}, the default model, in MLflow's protocol",
            },
        }
    if models:
        _exclude(paths, models)
    return {**base, "paths": paths, "components": {**base["components"], "schemas": schemas}}


def model_parts(
    kept: Kept, version: VersionRecord, route: ModelRoute | None, max_rows: int
) -> Parts:
    """The model's own paths answered by `version` through `route`, or (no route) the
    version's pinned paths: kept, as a version never changes."""
    signature = version.signature if route is None else with_key(version.signature, route)
    key = (version.model, version.number, version.sha256, signature.passthrough, route is None)
    parts = kept.get(key)
    if parts is None:
        parts = kept[key] = build_parts(version, signature, route is None, max_rows)
    return parts


def build_parts(version: VersionRecord, signature: Signature, pinned: bool, max_rows: int) -> Parts:
    """Each protocol's predict path of `version` (pinned or the model's own) and its schemas."""
    model, number = version.model, version.number
    prefix = f"{model}_v{number}" + ("_keyed" if signature.passthrough else "")
    schemas = VersionSchemas(prefix, signature, version.profile, max_rows)
    row = example_row(version)
    paths = {}
    for codec in CODECS:
        for template in codec.paths:
            if "{model}" not in template or ("{version}" in template) != pinned:
                continue
            content: dict[str, Any] = {
                "application/json": {
                    "schema": schemas.body(codec.name),
                    "examples": json_examples(codec.name, version.signature, row),
                }
            }
            if codec.name == "mlflow":
                example = csv_example(version.signature, row)
                content["text/csv"] = {"schema": schemas.csv(), "example": example}
            path = template.replace("{model}", model).replace("{version}", str(number))
            paths[path] = {"post": _operation(version, codec.name, template, content, pinned)}
    return Parts(paths, schemas.components)


def _operation(
    version: VersionRecord, protocol: str, template: str, content: dict[str, Any], pinned: bool
) -> dict[str, Any]:
    model, number = version.model, version.number
    which = f"version {number}" if pinned else f"version {number} answers now"
    operation: dict[str, Any] = {
        "tags": ["models"],
        "summary": f"Predict with {model} in the {protocol} protocol ({which})",
        # ":" is in no model name: "churn" pinned at 2 is never a model "churn_v2".
        "operationId": f"{protocol}_predict_{model}" + (f":v{number}" if pinned else ""),
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {
                "description": "The predictions, and which version made them",
                "content": {"application/json": {"schema": answer_schema(protocol)}},
            }
        },
    }
    complete(operation, access.ACCESS[("POST", template)], is_predict=True)
    return operation


def _default_model(catalog: Catalog, configured: str) -> str | None:
    try:
        return catalog.default_model(configured)
    except PointsmanError:
        return None


def _exclude(paths: dict[str, Any], models: list[str]) -> None:
    """On the templated predict paths, `{model}` names none of `models` (they have their own);
    the shared base document's operations are replaced, never changed."""
    templates = {path for codec in CODECS for path in codec.paths if "{model}" in path}
    for path in templates & set(paths):
        operation = paths[path]["post"]
        parameters = [
            {**p, "schema": {**p["schema"], "not": {"enum": models}}} if p["name"] == "model" else p
            for p in operation.get("parameters", [])
        ]
        paths[path] = {**paths[path], "post": {**operation, "parameters": parameters}}


def openapi_route(app: FastAPI, gate: access.Gate) -> Route:
    """`GET /openapi.json`, open; a caller presenting a valid key also gets the predict paths
    of each deployed model it may predict with or read."""
    kept: Kept = {}

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
        return JSONResponse(openapi_with_models(app, visible, kept))

    return Route(app.openapi_url or "/openapi.json", endpoint, methods=["GET"],
                 include_in_schema=False)  # fmt: skip


def use_openapi_route(app: FastAPI, gate: access.Gate) -> None:
    """Replace FastAPI's own /openapi.json route with `openapi_route`."""
    path = app.openapi_url or "/openapi.json"
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, Route) and route.path == path:
            routes[i] = openapi_route(app, gate)
