"""The catalogue, a model's page and its portal (generated calls and "try it")."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pointsman.auth.clients import ClientBook
from pointsman.errors import PointsmanError
from pointsman.project import Project
from pointsman.registry.about import check_about, load_about, load_abouts, save_about
from pointsman.ui import figures
from pointsman.ui.dashboard import dashboard_data
from pointsman.ui.render import SECURITY_HEADERS, page, parts_of, problem, render
from pointsman.ui.routeview import route_boxes, route_words
from pointsman.ui.sessions import Viewer
from pointsman.ui.signature import ERROR_CODES, input_rows
from pointsman.ui.snippets import example_row, snippets


def project_of(request: Request) -> Project:
    project: Project = request.app.state.project
    return project


def catalogue_data(project: Project, viewer: Viewer, query: str) -> dict[str, Any]:
    abouts = load_abouts(project.engine)
    summaries = [s for s in project.registry.list_models() if viewer.may_see(s.name)]
    needle = query.strip().lower()
    if needle:
        summaries = [
            s for s in summaries
            if needle in s.name.lower()
            or needle in abouts[s.name].description.lower()
            or needle in abouts[s.name].owner.lower()
            or any(needle in t.lower() for t in abouts[s.name].tags)
        ]  # fmt: skip
    live = figures.live_figures(project.engine, [s.name for s in summaries])
    rows = []
    for s in summaries:
        fig = live.get((s.name, None))
        rows.append(
            {
                "name": s.name,
                "about": abouts[s.name],
                "versions": s.versions,
                "deployed": s.deployed,
                "p50": figures.format_ms(fig.p50_ms if fig else None),
                "p99": figures.format_ms(fig.p99_ms if fig else None),
                "rate": figures.format_rate(fig),
                "errors": figures.format_share(fig.error_rate if fig else None),
            }
        )
    return {"rows": rows, "query": query}


@page
async def catalogue(request: Request, viewer: Viewer) -> Response:
    query = request.query_params.get("q", "")
    data = await run_in_threadpool(catalogue_data, project_of(request), viewer, query)
    return render(request, "catalogue.html", viewer, title="Catalogue", **data)


def _lineage(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in lineage.items():
        if key in ("metrics", "params") or value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out.append((key.replace("_", " "), text if len(text) < 300 else text[:297] + "…"))
    return out


def model_data(project: Project, model: str) -> dict[str, Any]:
    about = load_about(project.engine, model)
    versions = project.registry.list_versions(model)
    route = project.routes.find(model)
    live = figures.live_figures(project.engine, [model])
    routed = set(route.versions) if route else set()
    shown = []
    for version in reversed(versions):
        fig = live.get((model, version.number))
        lineage = version.lineage
        shown.append(
            {
                "record": version,
                "routed": version.number in routed,
                "inputs": input_rows(version),
                "lineage": _lineage(lineage),
                "metrics": sorted((lineage.get("metrics") or {}).items()),
                "params": sorted((lineage.get("params") or {}).items()),
                "p50": figures.format_ms(fig.p50_ms if fig else None),
                "p99": figures.format_ms(fig.p99_ms if fig else None),
                "rate": figures.format_rate(fig),
                "errors": figures.format_share(fig.error_rate if fig else None),
            }
        )
    return {
        "model": model,
        "about": about,
        "route": route,
        "words": route_words(route),
        "boxes": route_boxes(route),
        "versions": shown,
        "error_codes": ERROR_CODES,
    }


def _model_of(request: Request, viewer: Viewer) -> str | None:
    model = str(request.path_params["model"])
    return model if viewer.may_see(model) else None


def _unknown(request: Request, viewer: Viewer) -> Response:
    return problem(
        request, viewer, 404,
        f"No model {request.path_params['model']!r} that your key ({viewer.name}) may see: "
        "pick one from the catalogue, or ask an admin for a read:MODEL scope.",
    )  # fmt: skip


@page
async def model_page(request: Request, viewer: Viewer) -> Response:
    model = _model_of(request, viewer)
    if model is None:
        return _unknown(request, viewer)
    try:
        data = await run_in_threadpool(model_data, project_of(request), model)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    saved = request.query_params.get("saved") == "1"
    return render(request, "model.html", viewer, title=model, saved=saved, **data)


@page
async def edit_about(request: Request, viewer: Viewer) -> Response:
    """Description, owner and tags (admin or deploy:MODEL), audited as `model.about`."""
    model = str(request.path_params["model"])
    if not viewer.may("deploy", model):
        return problem(
            request, viewer, 403,
            f"Your key ({viewer.name}) may not edit {model!r}: it needs deploy:{model} or admin.",
        )  # fmt: skip
    form = await request.form()
    try:
        about = check_about(
            str(form.get("description") or ""),
            str(form.get("owner") or ""),
            str(form.get("tags") or "").replace(",", " ").split(),
        )
        await run_in_threadpool(save_about, project_of(request).engine, model, about, viewer.name)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    return RedirectResponse(f"/ui/models/{model}?saved=1", 303, headers=SECURITY_HEADERS)


def portal_data(project: Project, request: Request, model: str) -> dict[str, Any]:
    route = project.routes.find(model)
    versions = project.registry.list_versions(model)
    if not versions:
        raise PointsmanError(f"{model!r} has no version yet.")
    primary = next((v for v in versions if route and v.number == route.primary), versions[-1])
    base = str(request.base_url).rstrip("/")
    return {
        "model": model,
        "route": route,
        "primary": primary,
        "snippets": snippets(base, model, primary),
        "example": json.dumps({"rows": [example_row(primary)]}, indent=2),
        "clients": ClientBook(project.engine).list_clients(),
    }


async def _portal(request: Request, viewer: Viewer, model: str, **extra: Any) -> Response:
    try:
        data = await run_in_threadpool(portal_data, project_of(request), request, model)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    data.update(extra)
    return render(request, "portal.html", viewer, title=f"{model}: portal", **data)


@page
async def portal(request: Request, viewer: Viewer) -> Response:
    model = _model_of(request, viewer)
    if model is None:
        return _unknown(request, viewer)
    return await _portal(request, viewer, model, answer=None, answer_status=None, body=None)


@page
async def try_it(request: Request, viewer: Viewer) -> Response:
    """Call the model as the signed-in client (its scopes, its name in the prediction log)."""
    model = _model_of(request, viewer)
    if model is None:
        return _unknown(request, viewer)
    form = await request.form()
    body = str(form.get("body") or "")
    if not viewer.may("predict", model):
        status, answer = (
            403,
            {
                "error": f"Your key ({viewer.name}) lacks predict:{model}; ask an admin for it.",
                "code": "forbidden",
            },
        )
    else:
        status, answer = await parts_of(request).invoke(model, body.encode(), viewer.name)
    shown = orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
    warnings = answer.get("warnings") if isinstance(answer, dict) else None
    return await _portal(
        request, viewer, model, answer=shown, answer_status=status, body=body, warnings=warnings
    )


@page
async def dashboard(request: Request, viewer: Viewer) -> Response:
    model = _model_of(request, viewer)
    if model is None:
        return _unknown(request, viewer)
    window = request.query_params.get("window", "1h")
    raw = request.query_params.get("version", "")
    version = int(raw) if raw.isdigit() else None
    try:
        data = await run_in_threadpool(dashboard_data, project_of(request), model, window, version)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    return render(request, "dashboard.html", viewer, title=f"{model}: dashboard", **data)
