"""uvicorn's HTTP protocol (httptools), sending each answer's head with its body.

uvicorn writes an answer's head and its body separately, and uvloop sends every write at
once: two `send` calls (and two TCP segments) per answer, which py-spy put at about a tenth
of the HTTP worker's CPU under load. Here the head is held and leaves with the first write
that follows it (the whole body of an ordinary answer, or a streamed body's first chunk), or
when the answer ends without a body (HEAD), or when the connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD = b"HTTP/1.1 "  # every status line uvicorn writes starts so (HTTP/1.0 requests too)


class HeldWrites:
    """A transport that holds an answer's head until the next write; everything else is the
    wrapped transport's."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:9] == HEAD and data[9:10] != b"1":  # 1xx (100 Continue) goes at once
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send a head still held (dropped if the connection is going away)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    # The calls uvicorn makes for every request, spelled out (no __getattr__ detour).
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneSendProtocol(HttpToolsProtocol):
    """HttpToolsProtocol over `HeldWrites`: an answer's head and body leave in one send."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        held = HeldWrites(cast(asyncio.Transport, transport))
        super().connection_made(cast(asyncio.Transport, held))

    def on_response_complete(self) -> None:
        transport = self.transport
        if isinstance(transport, HeldWrites):
            transport.flush()  # an answer without a body (HEAD) has its head still held
        super().on_response_complete()
