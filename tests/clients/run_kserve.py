"""The KServe SDK's InferenceRESTClient (V2 and V1) against a running pointsman server.

Usage: POINTSMAN_KEY=pk_... python run_kserve.py URL IRIS_MODEL   (run in .venvs/kserve)
IRIS_MODEL: an iris classifier (labels 0..2). Exits non-zero with a message on the first
check that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
IRIS_LABELS = [0, 2]


class BearerKey(httpx.Auth):
    """The API key on every request (RESTConfig takes any httpx auth)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.key}"
        yield request


def config(protocol: str) -> RESTConfig:
    return RESTConfig(protocol=protocol, timeout=20, auth=BearerKey(os.environ["POINTSMAN_KEY"]))


def check(ok: object, message: str) -> None:
    if not ok:
        sys.exit(f"FAILED: {message}")


def check_response(response: Any, model: str, request_id: str, how: str) -> None:
    check(response.model_name == model, f"{how}: model_name {response.model_name!r}")
    check(response.id == request_id, f"{how}: id {response.id!r}, sent {request_id!r}")
    outputs = {o.name: o for o in response.outputs}
    check(set(outputs) == {"predictions", "probabilities"}, f"{how}: outputs {list(outputs)}")
    labels = outputs["predictions"].as_numpy().tolist()
    check(labels == IRIS_LABELS, f"{how}: predictions {labels} != {IRIS_LABELS}")
    proba = outputs["probabilities"].as_numpy()
    check(proba.shape == (2, 3), f"{how}: probabilities shape {proba.shape}")
    check(np.allclose(proba.sum(axis=1), 1.0), f"{how}: probability rows do not sum to 1")


async def check_v2(base: str, model: str) -> None:
    async with InferenceRESTClient(config("v2")) as client:
        check(await client.is_server_live(base) is True, "v2 is_server_live is not True")
        check(await client.is_server_ready(base) is True, "v2 is_server_ready is not True")
        check(await client.is_model_ready(base, model) is True, f"v2 is_model_ready({model!r})")
        check(
            await client.is_model_ready(base, "no-such-model") is False,
            "v2 is_model_ready('no-such-model') is not False",
        )

        # JSON data given as a nested list.
        tensor = InferInput("input-0", list(IRIS_ROWS.shape), "FP32", data=IRIS_ROWS.tolist())
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-json")
        response = await client.infer(base, request, model_name=model)
        check_response(response, model, "kserve-json", "v2 JSON infer")

        # set_data_from_numpy defaults to binary tensor data (inference-header-content-length).
        tensor = InferInput("input-0", list(IRIS_ROWS.shape), "FP32")
        tensor.set_data_from_numpy(IRIS_ROWS)
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-bin")
        check(request.to_rest()[1], "the SDK did not send binary data; the check is void")
        response = await client.infer(base, request, model_name=model)
        check_response(response, model, "kserve-bin", "v2 binary infer")

        # One input per column, named as the model metadata lists them.
        columns = [
            InferInput(name, [2, 1], "FP64", data=IRIS_ROWS[:, [j]].astype(float).tolist())
            for j, name in enumerate(IRIS_COLUMNS)
        ]
        request = InferRequest(model_name=model, infer_inputs=columns, request_id="kserve-cols")
        response = await client.infer(base, request, model_name=model)
        check_response(response, model, "kserve-cols", "v2 per-column infer")

        try:
            await client.infer(base, request, model_name="no-such-model")
            check(False, "v2 infer on an unknown model did not raise")
        except httpx.HTTPStatusError as exc:
            check(exc.response.status_code == 404, f"unknown model: {exc.response.status_code}")
            check("no-such-model" in str(exc), f"unknown model error lacks the name: {exc}")


async def check_v1(base: str, model: str) -> None:
    async with InferenceRESTClient(config("v1")) as client:
        check(await client.is_server_live(base) is True, "v1 is_server_live is not True")
        check(await client.is_model_ready(base, model) is True, f"v1 is_model_ready({model!r})")
        rows = IRIS_ROWS.tolist()
        out = await client.infer(base, {"instances": rows}, model_name=model)
        check(out.get("predictions") == IRIS_LABELS, f"v1 infer (lists) answered {out}")
        records = [dict(zip(IRIS_COLUMNS, row, strict=True)) for row in rows]
        out = await client.infer(base, {"instances": records}, model_name=model)
        check(out.get("predictions") == IRIS_LABELS, f"v1 infer (objects) answered {out}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("iris")
    args = parser.parse_args()
    await check_v2(args.url, args.iris)
    await check_v1(args.url, args.iris)
    print("kserve InferenceRESTClient v2 and v1: all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
