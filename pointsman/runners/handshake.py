"""The greeting that opens a TCP connection to a runner: both sides prove the shared secret.

Over a Unix socket the folder's permissions say who may call; over TCP anyone who reaches
the port may write to it, so each connection starts with a challenge, never the secret:

    runner → caller   HELLO | runner nonce (32 bytes)
    caller → runner   HMAC(secret, "caller" | runner nonce) | caller nonce (32 bytes)
    runner → caller   HMAC(secret, "runner" | caller nonce | runner nonce)

A runner that gets a wrong proof closes the connection without a word; a caller that gets
a wrong proof back hangs up. Fresh nonces on both sides: a recorded greeting is no use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import socket

HELLO = b"PMR1"
NONCE = 32
PROOF = 32
GREETING = len(HELLO) + NONCE  # what the runner sends first
ANSWER = PROOF + NONCE  # what the caller sends back
TIMEOUT_S = 5.0


class HandshakeError(Exception):
    """The other side does not hold the same secret, or does not speak the protocol."""


def proof(secret: bytes, role: bytes, *nonces: bytes) -> bytes:
    return hmac.new(secret, role + b"".join(nonces), hashlib.sha256).digest()


def greeting() -> tuple[bytes, bytes]:
    """(the runner's nonce, the bytes it sends a new caller)."""
    nonce = secrets.token_bytes(NONCE)
    return nonce, HELLO + nonce


def check_answer(secret: bytes, nonce: bytes, answer: bytes) -> bytes | None:
    """The runner's reply to a caller's answer, or None when its proof is wrong."""
    if len(answer) != ANSWER or not hmac.compare_digest(
        answer[:PROOF], proof(secret, b"caller", nonce)
    ):
        return None
    return proof(secret, b"runner", answer[PROOF:], nonce)


async def prove(sock: socket.socket, secret: bytes) -> None:
    """The caller's side, on a connected non-blocking socket; HandshakeError if it fails."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            hello = await _read(loop, sock, GREETING)
            if not hello.startswith(HELLO):
                raise HandshakeError("it does not speak the runner protocol over TCP")
            runner_nonce = hello[len(HELLO) :]
            caller_nonce = secrets.token_bytes(NONCE)
            await loop.sock_sendall(sock, proof(secret, b"caller", runner_nonce) + caller_nonce)
            reply = await _read(loop, sock, PROOF)
    except TimeoutError:
        raise HandshakeError(f"no greeting within {TIMEOUT_S:g} s") from None
    if not hmac.compare_digest(reply, proof(secret, b"runner", caller_nonce, runner_nonce)):
        raise HandshakeError("it does not hold the same runner_secret")


async def _read(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise HandshakeError(
                "it closed the connection: it refused our proof (another runner_secret?)"
            )
        data += chunk
    return data
