"""tritonclient (sync and aio HTTP clients) against a running pointsman server.

Usage: POINTSMAN_KEY=pk_... python run_triton.py URL IRIS_MODEL CHURN_MODEL   (in .venvs/triton)
IRIS_MODEL: iris classifier (labels 0..2); CHURN_MODEL: the demo churn model, version 1 deployed.
Exits non-zero with a message on the first check that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient._plugin import InferenceServerClientPlugin
from tritonclient.utils import InferenceServerException

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
IRIS_LABELS = [0, 2]
CHURN_ROW: dict[str, Any] = {
    "tenure_months": 3,
    "monthly_charges": 89.5,
    "support_calls": 4,
    "age": 30,
    "plan": "premium",
    "contract": "monthly",
    "region": "north",
}
NUMPY_TYPES = {"BYTES": np.object_, "INT64": np.int64, "INT32": np.int32, "FP64": np.float64}
NUMPY_TYPES |= {"FP32": np.float32, "BOOL": np.bool_}


class BearerKey(InferenceServerClientPlugin):
    """tritonclient's plugin hook: the API key on every request."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: Any) -> None:
        request.headers["Authorization"] = f"Bearer {self.key}"


def check(ok: object, message: str) -> None:
    if not ok:
        sys.exit(f"FAILED: {message}")


class Awaitable:
    """The sync client behind the aio client's interface, so one set of checks runs on both."""

    def __init__(self, client: httpclient.InferenceServerClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


def iris_input(binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input-0", list(IRIS_ROWS.shape), "FP32")
    if binary:
        tensor.set_data_from_numpy(IRIS_ROWS)  # the default: binary tensor data
    else:
        tensor.set_data_from_numpy(IRIS_ROWS, binary_data=False)
    return tensor


def check_iris_result(result: Any, how: str) -> None:
    labels = result.as_numpy("predictions")
    check(labels is not None, f"{how}: no 'predictions' output in {result.get_response()}")
    check(labels.tolist() == IRIS_LABELS, f"{how}: predictions {labels.tolist()} != {IRIS_LABELS}")
    proba = result.as_numpy("probabilities")
    check(proba is not None and proba.shape == (2, 3), f"{how}: probabilities {proba!r}")
    check(np.allclose(proba.sum(axis=1), 1.0), f"{how}: probability rows do not sum to 1")


async def run(client: Any, how: str, iris: str, churn: str) -> None:
    check(await client.is_server_live(), f"{how}: is_server_live() is False")
    check(await client.is_server_ready(), f"{how}: is_server_ready() is False")
    check(await client.is_model_ready(iris), f"{how}: is_model_ready({iris!r}) is False")
    check(
        await client.is_model_ready(churn, "1"), f"{how}: is_model_ready({churn!r}, '1') is False"
    )
    check(
        not await client.is_model_ready("no-such-model"),
        f"{how}: is_model_ready('no-such-model') is True",
    )

    server = await client.get_server_metadata()
    check(server.get("name") == "pointsman", f"{how}: server metadata {server}")
    check("binary_tensor_data" in server.get("extensions", []), f"{how}: extensions {server}")
    meta = await client.get_model_metadata(iris)
    check(meta.get("name") == iris, f"{how}: model metadata name {meta.get('name')!r}")
    names = [i["name"] for i in meta.get("inputs", [])]
    check(names == IRIS_COLUMNS, f"{how}: model metadata inputs {names}")
    outputs = {o["name"] for o in meta.get("outputs", [])}
    check(outputs == {"predictions", "probabilities"}, f"{how}: model metadata outputs {outputs}")

    # JSON tensors, named outputs asked for as JSON, and a request id that must come back.
    wanted = [
        httpclient.InferRequestedOutput("predictions", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = await client.infer(iris, [iris_input(False)], outputs=wanted, request_id="req-json")
    check(result.get_response().get("id") == "req-json", f"{how}: id not echoed")
    check_iris_result(result, f"{how} JSON infer")

    # What copy-pasted tritonclient code sends: binary input, no outputs (binary_data_output).
    check_iris_result(await client.infer(iris, [iris_input(True)]), f"{how} binary infer")
    result = await client.infer(
        iris,
        [iris_input(True)],
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )
    check_iris_result(result, f"{how} gzip-compressed infer")

    try:
        await client.infer("no-such-model", [iris_input(False)])
        check(False, f"{how}: infer on an unknown model did not raise")
    except InferenceServerException as exc:
        check(exc.status() == "404", f"{how}: unknown model gave status {exc.status()!r}")
        check(exc.message(), f"{how}: unknown model error has no message")

    # The churn model's columns as typed inputs from its metadata: BYTES for strings.
    meta = await client.get_model_metadata(churn, "1")
    for binary in (True, False):
        inputs = []
        for spec in meta["inputs"]:
            value = np.array([[CHURN_ROW[spec["name"]]]], dtype=NUMPY_TYPES[spec["datatype"]])
            tensor = httpclient.InferInput(spec["name"], [1, 1], spec["datatype"])
            tensor.set_data_from_numpy(value, binary_data=binary)
            inputs.append(tensor)
        types = {i.name(): i.datatype() for i in inputs}
        check(types["plan"] == "BYTES", f"{how}: churn 'plan' is {types['plan']}, not BYTES")
        result = await client.infer(churn, inputs, model_version="1", request_id=f"churn-{binary}")
        body = result.get_response()
        check(body.get("model_version") == "1", f"{how}: pinned version answered {body}")
        labels = result.as_numpy("predictions")
        check(labels is not None and labels.shape == (1,), f"{how}: churn answered {body}")
        check(int(labels[0]) in (0, 1), f"{how}: churn label {labels[0]!r} is not 0 or 1")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("iris")
    parser.add_argument("churn")
    args = parser.parse_args()
    hostport = urlsplit(args.url).netloc or args.url  # tritonclient refuses a scheme

    sync = httpclient.InferenceServerClient(url=hostport, network_timeout=20)
    sync.register_plugin(BearerKey(os.environ["POINTSMAN_KEY"]))
    try:
        await run(Awaitable(sync), "tritonclient.http", args.iris, args.churn)
    finally:
        sync.close()
    aio = aioclient.InferenceServerClient(url=hostport, conn_timeout=20)
    aio.register_plugin(BearerKey(os.environ["POINTSMAN_KEY"]))
    try:
        await run(aio, "tritonclient.http.aio", args.iris, args.churn)
    finally:
        await aio.close()
    print("tritonclient.http and tritonclient.http.aio: all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
