"""`pointsman predict`: call a model, on a running server (--url) or in this process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from pointsman.catalog import Catalog
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import print_json, table
from pointsman.cli.running import runner_session
from pointsman.errors import BadRequest, PointsmanError
from pointsman.pipeline import build_pipeline
from pointsman.protocols import Payload, native
from pointsman.registry.profiles import read_training_data, to_records
from pointsman.types import Outcome, Prediction


class RemoteError(PointsmanError):
    """The server answered with an error; its message is shown as is."""

    code = "remote_error"


def _body(payload: str | None, file: Path | None) -> bytes:
    if file is not None:
        if file.suffix.lower() in (".csv", ".parquet", ".pq"):
            frame = read_training_data(file)
            return orjson.dumps({"rows": to_records(frame, len(frame))})
        return file.read_bytes()
    if payload is None:
        raise BadRequest(
            "Give the input as an argument ('{\"rows\": [{...}]}') or with -f rows.json|rows.csv."
        )
    return payload.encode()


def _remote(
    url: str, model: str, version: str | None, body: bytes, key: str | None
) -> dict[str, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + "/predict"
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = httpx.post(url.rstrip("/") + path, content=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise RemoteError(f"Cannot reach {url}: {exc}. Is `pointsman serve` running?") from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise RemoteError(f"{url} answered {response.status_code} with non-JSON.") from exc
    if response.status_code >= 400:
        raise RemoteError(f"{response.status_code}: {data.get('error', data)}")
    result: dict[str, Any] = data
    return result


def _local(ctx: Context, model: str, version: str | None, body: bytes) -> dict[str, Any]:
    """In this process, with the models in runners of this command's own (same limits)."""
    project = ctx.project()
    session = runner_session(project)
    catalog = Catalog(project, session.run_dir)
    catalog.refresh()
    target = catalog.target(model, version)
    numbers = [target.version.number] if target.route is None else target.route.versions
    registry = project.registry
    session.start(
        [(registry.get_version(model, n), project.runners.spec(model, n)) for n in numbers]
    )
    pipeline = build_pipeline(catalog, project.settings)
    try:
        payload = Payload(native.CODEC, body, {})

        async def run() -> Prediction:
            try:
                return await pipeline.predict(target, payload, Outcome("cli"))
            finally:
                catalog.close()

        return native.encode(asyncio.run(run()))
    finally:
        pipeline.close()  # ships the record of this call


@click.command()
@click.argument("model")
@click.argument("payload", required=False)
@click.option(
    "-f",
    "--file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Input file: JSON body, or CSV/Parquet rows.",
)
@click.option("--version", help="Pin a version (default: what the route chooses).")
@click.option("--url", help="A running server, e.g. http://127.0.0.1:8080 (default: in-process).")
@click.option(
    "--key",
    envvar="POINTSMAN_KEY",
    help="API key for --url (default: $POINTSMAN_KEY); in-process calls need none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@pass_context
def predict(
    ctx: Context,
    model: str,
    payload: str | None,
    file: Path | None,
    version: str | None,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Predict with MODEL on PAYLOAD ({"rows": [...]} or {"columns": [...], "data": [...]})."""
    body = _body(payload, file)
    result = _remote(url, model, version, body, key) if url else _local(ctx, model, version, body)
    if as_json:
        print_json(result)
        return
    probabilities = result.get("probabilities") or []
    labels = list(probabilities[0]) if probabilities else []
    rows = []
    for i, label in enumerate(result["predictions"]):
        probs = [probabilities[i][k] for k in labels] if probabilities else []
        rows.append([i, label, *probs])
    title = f"{result['model']} version {result['version']} · request {result['request_id']}"
    table(title, ["row", "prediction", *[f"p({k})" for k in labels]], rows)


COMMANDS = [predict]
