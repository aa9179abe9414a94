"""Request bodies of every protocol → Frame, and Prediction → response bodies.

native (pointsman's own JSON), v1 (KServe V1 / TF Serving), v2 (Open Inference Protocol,
with binary tensors) and mlflow (/invocations). Each module has `decode` and `encode` and a
`CODEC` (see `base.Codec`); none of them knows about HTTP beyond the paths it is served at.
"""

from pointsman.protocols import mlflow, native, v1, v2
from pointsman.protocols.base import Codec, Decoded, FramePayload, Payload
from pointsman.protocols.json import dumps, loads
from pointsman.protocols.v2 import V2Request

# Every protocol the server speaks: adding one is its codec module and a line here.
CODECS: tuple[Codec, ...] = (native.CODEC, v1.CODEC, v2.CODEC, mlflow.CODEC)

__all__ = [
    "CODECS",
    "Codec",
    "Decoded",
    "FramePayload",
    "Payload",
    "V2Request",
    "dumps",
    "loads",
    "mlflow",
    "native",
    "v1",
    "v2",
]
