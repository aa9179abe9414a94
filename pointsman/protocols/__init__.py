"""Request bodies of every protocol → Frame, and Prediction → response bodies.

native (pointsman's own JSON), v1 (KServe V1 / TF Serving), v2 (Open Inference Protocol,
with binary tensors) and mlflow (/invocations). Each module has `decode` and `encode`;
none of them knows about HTTP.
"""

from pointsman.protocols import mlflow, native, v1, v2
from pointsman.protocols.json import dumps, loads
from pointsman.protocols.v2 import V2Request

__all__ = ["V2Request", "dumps", "loads", "mlflow", "native", "v1", "v2"]
