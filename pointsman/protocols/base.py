"""What every protocol provides (a `Codec`), and the decoded request the pipeline reads.

A codec decodes a body into a `Decoded` (the checked frame plus what the protocol needs to
answer), encodes a `Prediction` into the protocol's body, and shapes errors the way the
protocol's clients read them. Adding a protocol is one codec module and one line in the
API's route table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pointsman.errors import PointsmanError
from pointsman.types import Frame, Prediction, Signature
from pointsman.validation.signature import build_frame


@dataclass
class Decoded:
    """A body decoded for one signature: the frame, and what the protocol answers with."""

    frame: Frame
    request_id: str | None = None  # an id the body itself carries (V2's "id")
    context: Any = None  # protocol-specific: V1's style, the V2 request


class Codec:
    """One wire protocol: body ⇄ frame and prediction, and its error shape."""

    name: str = ""  # native | v1 | v2 | mlflow: the `protocol` label of the metrics
    paths: tuple[str, ...] = ()  # where it is served (POST); {model} and {version} from the URL

    def decode(self, body: bytes, headers: Mapping[str, str], signature: Signature) -> Decoded:
        """The body as a checked frame (BadRequest 400, InvalidInput 422, …)."""
        raise NotImplementedError

    def encode(self, prediction: Prediction, decoded: Decoded) -> dict[str, Any]:
        """The answer's body."""
        raise NotImplementedError

    def error(self, exc: PointsmanError) -> tuple[int, dict[str, Any]]:
        """The status and body of an error, as this protocol's clients read it."""
        return int(exc.status), exc.to_json()


class Payload:
    """A request body with its headers, decoded once per signature it is read with.

    The handler reads it with the target's signature (to check the rows), the pipeline with
    the chosen arm's and the fallback's: an arm with the same inputs gets the same frame.
    """

    __slots__ = ("_decoded", "body", "codec", "headers")

    def __init__(self, codec: Codec, body: bytes, headers: Mapping[str, str]) -> None:
        self.codec = codec
        self.body = body
        self.headers = headers
        self._decoded: list[tuple[Signature, Decoded]] = []

    def decoded_for(self, signature: Signature) -> Decoded:
        for seen, decoded in self._decoded:
            if seen.inputs == signature.inputs and seen.passthrough == signature.passthrough:
                return decoded
        decoded = self.codec.decode(self.body, self.headers, signature)
        self._decoded.append((signature, decoded))
        return decoded

    def frame_for(self, signature: Signature) -> Frame:
        return self.decoded_for(signature).frame


class FramePayload(Payload):
    """A frame that did not come from a body (in-process calls, replays): other signatures
    get its columns rebuilt, not a body decoded again."""

    __slots__ = ("frame",)

    def __init__(self, frame: Frame) -> None:
        super().__init__(Codec(), b"", {})
        self.frame = frame

    def decoded_for(self, signature: Signature) -> Decoded:
        return Decoded(reframe(self.frame, signature))


def reframe(frame: Frame, signature: Signature) -> Frame:
    """`frame` as `signature` expects it: the same frame when the columns match."""
    if signature.names == list(frame.columns):
        return frame
    present = {c: frame.columns[c] for c in signature.names if c in frame.columns}
    return build_frame(signature, present, frame.n_rows)
