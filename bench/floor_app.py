"""The HTTP floor: an ASGI app that reads the request's body and answers a fixed prediction.

No framework, no model, no runner, no features: what uvicorn (uvloop and httptools) alone
costs per request. `front_cpu.py --servers uvicorn,floor` measures it beside pointsman's
front, so that a front figure can be read against what no Python server on this machine
can go below.

    uvicorn floor_app:app --app-dir bench --loop uvloop --http httptools --no-access-log \
        --lifespan off
"""

from __future__ import annotations

from typing import Any

ANSWER = b'{"predictions":["no"],"probabilities":[{"no":1.0,"yes":0.0}]}'
HEAD = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))],
}
BODY = {"type": "http.response.body", "body": ANSWER}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:  # the body, read whole as any server must before answering
        message = await receive()
        more = message.get("more_body", False)
    await send(HEAD)
    await send(BODY)
