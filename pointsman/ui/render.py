"""Rendering and guarding console pages: templates, security headers, the signed-in viewer."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pointsman import __version__
from pointsman.auth import KeyCache
from pointsman.errors import PointsmanError
from pointsman.ui.sessions import Viewer, check_token, find_viewer

HERE = Path(__file__).resolve().parent
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# Every script and style is a file of ours: nothing inline, nothing from another origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# (model, JSON body, client name) → (HTTP status, answer): the native predict endpoint,
# called in-process on behalf of a signed-in client (api/console.py builds it).
Invoke = Callable[[str, bytes, str], Awaitable[tuple[int, Any]]]


@dataclass
class ConsoleParts:
    """What the console needs from the server beyond the project: the key table, a way to
    call a model as a client, and the session lifetime."""

    keys: KeyCache | None
    invoke: Invoke
    session_hours: float = 12.0


def parts_of(request: Request) -> ConsoleParts:
    parts: ConsoleParts = request.app.state.console
    return parts


def render(
    request: Request, template: str, viewer: Viewer | None, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page from `template`, with the viewer, its CSRF token and the security headers."""
    html = TEMPLATES.get_template(template).render(
        viewer=viewer,
        csrf=viewer.csrf if viewer else "",
        app_version=__version__,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


Page = Callable[[Request, Viewer], Awaitable[Response]]
# Looks at a POST's headers before its body is read: the error refusing it, or None.
BodyCheck = Callable[[Request], PointsmanError | None]


def page(
    handler: Page, body_check: BodyCheck | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The handler, for a signed-in viewer only; every POST must carry the session's CSRF token.

    Without a session a GET is sent to the sign-in page (and back after), a POST gets 401.
    `body_check` may refuse a POST (too large, say) before its body is read.
    """

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        project = request.app.state.project
        viewer = await run_in_threadpool(
            find_viewer, project.engine, parts_of(request).keys, request
        )
        if viewer is None:
            if request.method == "GET":
                target = quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                return RedirectResponse(f"/ui/signin?next={target}", 303)
            return problem(request, None, 401, "Your session has ended: sign in again.")
        if request.method != "POST":
            return await handler(request, viewer)
        refused = body_check(request) if body_check is not None else None
        if refused is not None:
            return problem(request, viewer, refused.status, str(refused))
        form = await request.form()
        try:
            given = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
            if not check_token(viewer.csrf, given):
                return problem(
                    request, viewer, 403,
                    "This form is out of date (its CSRF token does not match your session): "
                    "reload the page and try again.",
                )  # fmt: skip
            return await handler(request, viewer)
        finally:
            await form.close()  # uploaded files' temporary copies, whatever the answer

    return guarded


def problem(request: Request, viewer: Viewer | None, status: int, message: str) -> HTMLResponse:
    """An error page that says what is wrong and what to do."""
    return render(request, "problem.html", viewer, status, message=message, title="Not possible")
