"""The console's tie to the API: "try it" calls the native predict endpoint in-process as
the signed-in client."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Message

from pointsman.api import inference
from pointsman.protocols import CODECS
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
