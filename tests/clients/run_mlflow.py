"""MLflow's scoring client and raw /invocations bodies against a running pointsman server.

Usage: POINTSMAN_KEY=pk_... python run_mlflow.py URL NAME=MLFLOW_MODEL_DIR [NAME=DIR ...]
(run in .venvs/mlflow). Each NAME is a pointsman model imported from that MLflow folder; the
first one must be the model answering the bare /invocations (the server's default_model).
Every answer is compared with what mlflow.pyfunc.load_model(dir).predict gives here.
Exits non-zero with a message on the first check that fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

# Before importing mlflow: no telemetry, and no tracking store anywhere.
os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from sklearn.datasets import load_iris

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TIMEOUT_S = 20


def check(ok: object, message: str) -> None:
    if not ok:
        sys.exit(f"FAILED: {message}")


def iris_sample() -> pd.DataFrame:
    """Every 10th iris row: all three species, including rows near the class borders."""
    frame = pd.DataFrame(load_iris().data, columns=COLUMNS)
    return frame.iloc[::10].reset_index(drop=True)


def post(url: str, body: str | bytes, content_type: str) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=TIMEOUT_S)


def check_scoring_client(url: str, frame: pd.DataFrame, expected: list[int]) -> None:
    parts = urlsplit(url)
    client = ScoringServerClient(parts.hostname, parts.port)
    client.wait_server_ready(timeout=TIMEOUT_S)
    answer = client.invoke(frame)  # {"dataframe_split": ...} to /invocations
    got = answer.get_predictions(predictions_format="ndarray").tolist()
    check(got == expected, f"ScoringServerClient.invoke: {got} != mlflow's {expected}")
    answer = client.invoke(frame.to_numpy())  # {"inputs": [[...], ...]}
    got = answer.get_predictions(predictions_format="ndarray").tolist()
    check(got == expected, f"ScoringServerClient.invoke(ndarray): {got} != mlflow's {expected}")
    version = client.get_version()
    check(version.strip(), f"get_version() answered {version!r}")


def check_invocations(endpoint: str, frame: pd.DataFrame, expected: list[int]) -> None:
    records = frame.to_dict(orient="records")
    bodies = {
        "dataframe_split": {"dataframe_split": frame.to_dict(orient="split")},
        "dataframe_records": {"dataframe_records": records},
        "instances (lists)": {"instances": frame.to_numpy().tolist()},
        "instances (objects)": {"instances": records},
        "inputs (lists)": {"inputs": frame.to_numpy().tolist()},
        "inputs (columns)": {"inputs": frame.to_dict(orient="list")},
    }
    for label, body in bodies.items():
        response = requests.post(endpoint, json=body, timeout=TIMEOUT_S)
        check(
            response.status_code == 200,
            f"{endpoint} {label}: {response.status_code} {response.text}",
        )
        got = response.json().get("predictions")
        check(got == expected, f"{endpoint} {label}: {got} != mlflow's {expected}")

    for content_type in ("text/csv", "text/csv; charset=utf-8"):
        response = post(endpoint, frame.to_csv(index=False), content_type)
        check(response.status_code == 200, f"{endpoint} {content_type}: {response.text}")
        got = response.json().get("predictions")
        check(got == expected, f"{endpoint} {content_type}: {got} != mlflow's {expected}")

    # MLflow >= 2.0 refuses the old format parameter with 415, and so must we.
    response = post(endpoint, "{}", "application/json; format=pandas-split")
    check(response.status_code == 415, f"format=pandas-split gave {response.status_code}, not 415")
    response = post(endpoint, "[1, 2]", "application/json")
    check(response.status_code == 400, f"a JSON list gave {response.status_code}, not 400")
    check(response.json().get("error_code") == "BAD_REQUEST", f"bad body: {response.text}")


def check_probabilities(base: str, name: str, folder: Path, frame: pd.DataFrame) -> None:
    """The V2 probabilities equal the sklearn flavor's predict_proba, read by mlflow."""
    expected = mlflow.sklearn.load_model(str(folder)).predict_proba(frame)
    inputs = [
        {"name": c, "shape": [len(frame), 1], "datatype": "FP64", "data": frame[c].tolist()}
        for c in COLUMNS
    ]
    response = requests.post(
        f"{base}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=TIMEOUT_S
    )
    check(response.status_code == 200, f"V2 infer on {name}: {response.text}")
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    got = np.asarray(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    check(np.allclose(got, expected, atol=1e-9), f"{name}: V2 probabilities differ from mlflow's")


def use_key_from_netrc(url: str, key: str) -> None:
    """ScoringServerClient sends no custom header; requests adds Basic auth from a netrc."""
    folder = Path(tempfile.mkdtemp())
    netrc = folder / "netrc"
    netrc.write_text(f"machine {urlsplit(url).hostname} login mlflow password {key}\n")
    netrc.chmod(0o600)
    os.environ["NETRC"] = str(netrc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("models", nargs="+", metavar="NAME=MLFLOW_MODEL_DIR")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    use_key_from_netrc(base, os.environ["POINTSMAN_KEY"])
    models = dict(item.split("=", 1) for item in args.models)
    frame = iris_sample()

    expected = {
        name: np.asarray(mlflow.pyfunc.load_model(folder).predict(frame)).tolist()
        for name, folder in models.items()
    }
    check(len(set(expected[next(iter(models))])) == 3, "the sample does not cover 3 species")
    check_scoring_client(base, frame, expected[next(iter(models))])
    check_invocations(f"{base}/invocations", frame, expected[next(iter(models))])
    for name, folder in models.items():
        check_invocations(f"{base}/v1/models/{name}/invocations", frame, expected[name])
        check_probabilities(base, name, Path(folder), frame)
    print(f"mlflow scoring client and /invocations ({', '.join(models)}): all checks passed")


if __name__ == "__main__":
    main()
