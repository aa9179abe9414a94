"""OneSendProtocol: an answer's head leaves with its body, and nothing else changes.

HeldWrites over a transport that records what it is given; then a plain ASGI app under
uvicorn with the protocol `pointsman serve` uses, in a thread on a free port of 127.0.0.1,
spoken to over a raw socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from pointsman.api.http_protocol import HeldWrites, OneSendProtocol

BODY = b'{"predictions": [0]}'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n"


class Recording(asyncio.Transport):
    """A transport that keeps what is written to it, one entry a write."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_a_head_waits_for_the_body_and_leaves_with_it() -> None:
    sent = Recording()
    held = HeldWrites(sent)
    held.write(HEAD)
    assert sent.sent == []
    held.write(BODY)
    assert sent.sent == [HEAD + BODY]
    held.write(b"more")  # nothing held: straight through
    assert sent.sent == [HEAD + BODY, b"more"]


def test_only_an_answers_head_is_held() -> None:
    sent = Recording()
    held = HeldWrites(sent)
    held.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it: at once
    assert sent.sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    held.write(HEAD)
    held.flush()  # an answer without a body (HEAD): its end sends the head
    assert sent.sent[-1] == HEAD
    held.write(HEAD)
    held.close()  # closing sends what is held first
    assert sent.sent[-1] == HEAD
    assert sent.closed
    held.write(HEAD)
    held.flush()  # closed meanwhile: dropped, never written to a closing transport
    assert sent.sent.count(HEAD) == 2


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/plain answers BODY; /stream answers two chunks, the second after a pause; a POST
    answers the body it read (after `Expect: 100-continue`, once the client sent it)."""
    if scope["type"] != "http":
        return
    body = b""
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b"second", "more_body": False})
        return
    content = body or BODY
    headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})


@pytest.fixture
def port() -> Iterator[int]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", http=OneSendProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, length: int) -> bytes:
    """Read until the head and `length` bytes of body are in."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < length:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    return data


def test_answers_arrive_whole_on_a_kept_alive_connection(port: int) -> None:
    with connect(port) as sock:
        for _ in range(3):  # keep-alive: every answer on the connection, not just the first
            sock.sendall(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = read_answer(sock, len(BODY))
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert answer.endswith(b"\r\n\r\n" + BODY)


def test_a_head_request_gets_its_head(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"HEAD /plain HTTP/1.1\r\nhost: x\r\n\r\n")
        head = read_answer(sock, 0)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert f"content-length: {len(BODY)}".encode() in head
        assert head.endswith(b"\r\n\r\n")


def test_a_streamed_answer_sends_its_first_chunk_before_the_last_is_written(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        first = read_answer(sock, 1)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"first;" in first and b"second" not in first
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        assert b"second" in rest


def test_expect_100_continue_is_answered_before_the_body_is_sent(port: int) -> None:
    with connect(port) as sock:
        payload = b'{"rows": []}'
        head = (
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
            b"content-length: %d\r\n\r\n" % len(payload)
        )
        sock.sendall(head)
        interim = sock.recv(65536)  # the client waits for this before sending its body
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(payload)
        answer = read_answer(sock, len(payload))
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(payload)


def test_an_answer_to_an_http_10_request_closes_after_it(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /plain HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(BODY)
