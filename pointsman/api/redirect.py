"""Plain HTTP beside an HTTPS server: every request is redirected (308) to HTTPS."""

from __future__ import annotations

import threading

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send


def redirect_app(https_port: int) -> ASGIApp:
    """An ASGI app answering 308 to the same path and query on https, port `https_port`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0]
        host = host or str(scope["server"][0])
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"https://{host}:{https_port}{scope['path']}" + (f"?{query}" if query else "")
        body = f'{{"error": "This server answers HTTPS only: {target}", "code": "https_required"}}'
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", target.encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    return app


def start_redirect_server(host: str, port: int, https_port: int) -> threading.Thread:
    """Serve the redirect on `port` in a daemon thread (it ends with the process)."""
    config = uvicorn.Config(
        redirect_app(https_port), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pointsman-https-redirect", daemon=True)
    thread.start()
    return thread
