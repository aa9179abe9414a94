"""The console: catalogue, portal and dashboards in the browser, served at /ui.

Server-rendered pages (Jinja2), one stylesheet and one script of ours, Chart.js vendored
under static/vendor; signed in with an API key traded for a session cookie.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pointsman.ui import actionpages, clientpages, pages, signin
from pointsman.ui.render import HERE, ConsoleParts, Invoke

__all__ = ["ConsoleParts", "Invoke", "console_mount"]


async def _home(request: Request) -> Response:
    return RedirectResponse("/ui/models", 303)


def console_mount() -> Mount:
    """Every console path under /ui (the app mounts it; each page checks the session)."""
    return Mount(
        "/ui",
        routes=[
            Route("/", _home, methods=["GET"]),
            Route("/signin", signin.signin, methods=["GET", "POST"]),
            Route("/signout", signin.signout, methods=["POST"]),
            Route("/models", pages.catalogue, methods=["GET"]),
            Route("/models/{model}", pages.model_page, methods=["GET"]),
            Route("/models/{model}/about", pages.edit_about, methods=["POST"]),
            Route("/models/{model}/portal", pages.portal, methods=["GET"]),
            Route("/models/{model}/try", pages.try_it, methods=["POST"]),
            Route("/models/{model}/dashboard", pages.dashboard, methods=["GET"]),
            Route("/models/{model}/actions", actionpages.actions, methods=["GET"]),
            Route("/models/{model}/actions/confirm", actionpages.confirm, methods=["GET"]),
            Route("/models/{model}/actions/{kind}", actionpages.act, methods=["POST"]),
            Route("/models/{model}/upload", actionpages.upload, methods=["POST"]),
            Route("/models/{model}/keyrequest", clientpages.request_key, methods=["POST"]),
            Route("/clients", clientpages.clients_page, methods=["GET"]),
            Route("/clients", clientpages.create_client, methods=["POST"]),
            Route("/requests", clientpages.requests_page, methods=["GET"]),
            Route("/requests/{id:int}/decide", clientpages.decide, methods=["POST"]),
            Route("/requests/{id:int}/collect", clientpages.collect, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
    )
