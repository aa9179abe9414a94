"""The portal's generated calls: one real row of the reference sample, in each protocol and
language a caller may use (curl, Python httpx, tritonclient, JavaScript)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pointsman.registry.versions import VersionRecord

V2_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}
NUMPY_TYPES = {"FP64": "float64", "FP32": "float32", "INT64": "int64", "INT32": "int32",
               "BOOL": "bool_", "BYTES": "object_"}  # fmt: skip
KEY_VARIABLE = "POINTSMAN_KEY"


@dataclass(frozen=True)
class Protocol:
    """One way of calling a model: its path and the body of one row."""

    name: str
    title: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Snippet:
    """One generated call: protocol, language and the code to copy."""

    protocol: str
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.protocol}-{self.language}".replace(" ", "-").lower()


def example_row(version: VersionRecord) -> dict[str, Any]:
    """The first row of the version's reference sample, else values typical of its profile."""
    if version.input_example:
        return {c.name: version.input_example[0].get(c.name) for c in version.signature.inputs}
    features = (version.profile or {}).get("features", {})
    row: dict[str, Any] = {}
    for column in version.signature.inputs:
        stats = features.get(column.name, {})
        if stats.get("categories"):
            row[column.name] = next(iter(stats["categories"]))
        elif column.type in ("long", "integer"):
            row[column.name] = int(stats.get("mean", 0))
        elif column.type == "boolean":
            row[column.name] = False
        elif column.type == "string":
            row[column.name] = ""
        else:
            row[column.name] = round(float(stats.get("mean", 0.0)), 3)
    return row


def protocols(model: str, version: VersionRecord, row: dict[str, Any]) -> list[Protocol]:
    columns = [c.name for c in version.signature.inputs]
    v2_inputs = [
        {
            "name": c.name,
            "shape": [1],
            "datatype": V2_TYPES.get(c.type, "BYTES"),
            "data": [row.get(c.name)],
        }
        for c in version.signature.inputs
    ]
    return [
        Protocol("native", "pointsman JSON", f"/v1/models/{model}/predict", {"rows": [row]}),
        Protocol(
            "v2", "Open Inference Protocol (V2)", f"/v2/models/{model}/infer", {"inputs": v2_inputs}
        ),
        Protocol("v1", "KServe V1", f"/v1/models/{model}:predict", {"instances": [row]}),
        Protocol(
            "mlflow",
            "MLflow scoring",
            f"/v1/models/{model}/invocations",
            {"dataframe_split": {"columns": columns, "data": [[row.get(c) for c in columns]]}},
        ),
    ]


def snippets(base_url: str, model: str, version: VersionRecord) -> list[Snippet]:
    """Every generated call for `model`, its row taken from `version` (the primary)."""
    row = example_row(version)
    out = []
    for protocol in protocols(model, version, row):
        url = base_url.rstrip("/") + protocol.path
        out += [
            Snippet(protocol.name, "curl", curl(url, protocol.body)),
            Snippet(protocol.name, "Python httpx", python_httpx(url, protocol.body)),
            Snippet(protocol.name, "JavaScript", javascript(url, protocol.body)),
        ]
        if protocol.name == "v2":
            out.append(Snippet("v2", "tritonclient", tritonclient(base_url, model, protocol)))
    return out


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def curl(url: str, body: dict[str, Any]) -> str:
    return (
        f"curl -s {_shell_quote(url)} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {_shell_quote(json.dumps(body))}"
    )


def python_httpx(url: str, body: dict[str, Any]) -> str:
    return (
        (
            "import os\n\nimport httpx\n\n"
            f"body = {json.dumps(body, indent=4)}\n"
            "answer = httpx.post(\n"
            f"    {url!r},\n"
            "    json=body,\n"
            f'    headers={{"Authorization": f"Bearer {{os.environ[{KEY_VARIABLE!r}]}}"}},\n'
            ")\n"
            "answer.raise_for_status()\n"
            "print(answer.json())"
        )
        .replace("null", "None")
        .replace("true", "True")
        .replace("false", "False")
    )


def javascript(url: str, body: dict[str, Any]) -> str:
    return (
        f"const response = await fetch({json.dumps(url)}, {{\n"
        '  method: "POST",\n'
        "  headers: {\n"
        f"    Authorization: `Bearer ${{process.env.{KEY_VARIABLE}}}`,\n"
        '    "Content-Type": "application/json",\n'
        "  },\n"
        f"  body: JSON.stringify({json.dumps(body)}),\n"
        "});\n"
        "console.log(await response.json());"
    )


def tritonclient(base_url: str, model: str, protocol: Protocol) -> str:
    host = base_url.split("://", 1)[-1].rstrip("/")
    ssl = base_url.startswith("https")
    lines = [
        "import os",
        "",
        "import numpy as np",
        "import tritonclient.http as httpclient",
        "",
        f"client = httpclient.InferenceServerClient({host!r}, ssl={ssl})",
        f'headers = {{"Authorization": f"Bearer {{os.environ[{KEY_VARIABLE!r}]}}"}}',
        "inputs = []",
    ]
    for tensor in protocol.body["inputs"]:
        dtype = NUMPY_TYPES[tensor["datatype"]]
        value = tensor["data"][0]
        data = repr(value)
        lines += [
            f"tensor = httpclient.InferInput({tensor['name']!r}, [1], {tensor['datatype']!r})",
            f"tensor.set_data_from_numpy(np.array([{data}], dtype=np.{dtype}))",
            "inputs.append(tensor)",
        ]
    lines += [
        f"result = client.infer({model!r}, inputs, headers=headers)",
        "print(result.get_response())",
    ]
    return "\n".join(lines)
