"""Sign in with an API key (a session cookie in exchange), sign out."""

from __future__ import annotations

import secrets
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pointsman.errors import PointsmanError
from pointsman.ui.render import SECURITY_HEADERS, page, parts_of, render
from pointsman.ui.sessions import (
    COOKIE,
    PRE_COOKIE,
    Viewer,
    check_token,
    close_session,
    open_session,
    set_cookie,
)


def _next(value: object) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    text = str(value or "")
    if text.startswith("/ui/") and not text.startswith("//"):
        return text
    return "/ui/models"


async def signin_form(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "signin.html", None, status, token=token, error=error,
        next=_next(request.query_params.get("next")), title="Sign in",
    )  # fmt: skip
    set_cookie(response, request, PRE_COOKIE, token, 600)
    return response


async def signin(request: Request) -> Response:
    """Check the key; open a session; the cookie is HttpOnly, SameSite=Strict, Secure on TLS."""
    if request.method == "GET":
        return await signin_form(request)
    form = await request.form()
    if not check_token(request.cookies.get(PRE_COOKIE, ""), str(form.get("token") or "")):
        return await signin_form(request, "The sign-in form expired: try again.", 403)
    keys = parts_of(request).keys
    if keys is None:
        return await signin_form(request, "The server is starting; retry in a moment.", 503)
    presented = str(form.get("key") or "").strip()
    try:
        client = keys.authenticate(presented, time.time())
    except PointsmanError:
        # A key created a moment ago: look at the store once before refusing it.
        await run_in_threadpool(keys.refresh)
        try:
            client = keys.authenticate(presented, time.time())
        except PointsmanError as exc:
            return await signin_form(request, str(exc), 401)
    project = request.app.state.project
    hours = parts_of(request).session_hours
    session_id, _ = await run_in_threadpool(open_session, project.engine, client, hours)
    response = RedirectResponse(_next(form.get("next")), 303, headers=SECURITY_HEADERS)
    set_cookie(response, request, COOKIE, session_id, int(hours * 3600))
    response.delete_cookie(PRE_COOKIE, path="/ui")
    return response


@page
async def signout(request: Request, viewer: Viewer) -> Response:
    project = request.app.state.project
    await run_in_threadpool(close_session, project.engine, viewer.session_hash)
    response = RedirectResponse("/ui/signin", 303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
