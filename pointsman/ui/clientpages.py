"""Clients and key requests in the console: describe an application, request a key for a
model from its portal, approve or refuse (admin), collect an approved key (shown once)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pointsman.auth.clients import ClientBook
from pointsman.errors import PointsmanError
from pointsman.ui.render import SECURITY_HEADERS, page, problem, render
from pointsman.ui.sessions import Viewer


def _book(request: Request) -> ClientBook:
    return ClientBook(request.app.state.project.engine)


def _back(url: str, message: str) -> Response:
    return RedirectResponse(f"{url}?done={quote(message)}", 303, headers=SECURITY_HEADERS)


@page
async def clients_page(request: Request, viewer: Viewer) -> Response:
    book = _book(request)
    records = await run_in_threadpool(book.list_clients)
    usage = await run_in_threadpool(book.usage)
    return render(request, "clients.html", viewer, title="Clients", clients=records,
                  usage=usage, done=request.query_params.get("done", ""))  # fmt: skip


@page
async def create_client(request: Request, viewer: Viewer) -> Response:
    form = await request.form()
    name, owner, contact, purpose = (
        str(form.get(k) or "") for k in ("name", "owner", "contact", "purpose")
    )
    try:
        await run_in_threadpool(
            _book(request).create_client, name, owner, contact, purpose, viewer.name
        )
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    return _back("/ui/clients", f"Client {name.strip()} described.")


@page
async def request_key(request: Request, viewer: Viewer) -> Response:
    model = str(request.path_params["model"])
    if not viewer.may_see(model):
        return problem(request, viewer, 404, f"No model {model!r} that your key may see.")
    form = await request.form()
    scopes = [f"{kind}:{model}" for kind in ("predict", "read") if form.get(kind)]
    try:
        asked = await run_in_threadpool(
            _book(request).request_key, str(form.get("client") or ""), model, scopes,
            str(form.get("note") or ""), viewer.name,
        )  # fmt: skip
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    return _back(
        "/ui/requests", f"Key request {asked.id} sent: an admin will approve or refuse it."
    )


@page
async def requests_page(request: Request, viewer: Viewer) -> Response:
    book = _book(request)
    mine = None if viewer.may("admin") else viewer.name
    asked = await run_in_threadpool(book.list_requests, mine)
    return render(request, "requests.html", viewer, title="Key requests", requests=asked,
                  done=request.query_params.get("done", ""), key=None)  # fmt: skip


@page
async def decide(request: Request, viewer: Viewer) -> Response:
    if not viewer.may("admin"):
        return problem(request, viewer, 403, "Only an admin key may approve or refuse keys.")
    form = await request.form()
    request_id = int(request.path_params["id"])
    approve = form.get("decision") == "approve"
    try:
        await run_in_threadpool(
            _book(request).decide, request_id, approve, str(form.get("reason") or ""), viewer.name
        )
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    return _back(
        "/ui/requests", f"Key request {request_id} {'approved' if approve else 'refused'}."
    )


@page
async def collect(request: Request, viewer: Viewer) -> Response:
    request_id = int(request.path_params["id"])
    book = _book(request)
    try:
        key = await run_in_threadpool(book.collect, request_id, viewer.name)
    except PointsmanError as exc:
        return problem(request, viewer, exc.status, str(exc))
    asked = await run_in_threadpool(book.list_requests, viewer.name)
    return render(request, "requests.html", viewer, title="Key requests", requests=asked,
                  done="", key=key)  # fmt: skip
