"""The compiled runtime: scikit-learn versions compiled to ONNX at register (or on demand),
used only where they agreed with the original on the reference sample, and said so."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI
from sklearn.base import clone
from sklearn.semi_supervised import LabelSpreading

from pointsman.api.app import build_app
from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET
from pointsman.errors import CompiledRuntimeRefused
from pointsman.pipeline import Pipeline
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.registry.models import Registry
from pointsman.runners import wire
from pointsman.runtimes import compiled
from pointsman.types import Outputs
from pointsman.validation.signature import build_frame, records_to_columns
from tests.conftest import churn_rows
from tests.monitoring.test_metrics import parse, value
from tests.serving import serving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def compiling(project: Project) -> Project:
    """The project, compiling at register as a project does by default."""
    project.registry.compile_at_register = True
    return project


def submission(model: str, files: tuple[Path, Path]) -> Submission:
    path, data = files
    return Submission(model=model, path=path, training_data=data, target=TARGET, user="t")


def run(project: Project, *args: str, ok: bool = True) -> Result:
    folder = str(project.settings.project_path())
    result = CliRunner().invoke(cli, ["--project", folder, *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def flat(text: str) -> str:
    """The words of an output, table borders left out (a folded cell reads on)."""
    return " ".join(text.translate({ord(c): " " for c in "│┃┏┓┗┛┡┩└┘━─┳┻╇┴┬"}).split())


def test_the_demo_versions_compile_at_register_and_agree(
    compiling: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    for files in churn_files:
        record, _ = compiling.registry.register(submission("churn", files))
        c = record.compiled
        assert c is not None and record.compiled_agreed, c
        assert c["rows"] == 4000 and c["label_agreement"] == 1.0
        assert 0 <= c["max_probability_diff"] <= compiled.TOLERANCE
        assert c["reason"] == "" and c["seconds"] > 0
        assert compiling.registry.artifacts.verified(c["artifact"], c["sha256"]).exists()
    out = flat(run(compiling, "show", "churn", "1").output)
    assert "yes: agreed with the original" in out
    assert "labels 100.00% identical" in out and "on 4000 reference rows" in out


@pytest.fixture
async def client(
    compiling: Project, churn_files: list[tuple[Path, Path]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The demo's v1 as two models: `churn` forced to the original runtime, `churnc` on
    auto (compiled, since it agreed); API keys off."""
    for model in ("churn", "churnc"):
        number = compiling.registry.register(submission(model, churn_files[0]))[0].number
        compiling.routes.deploy(model, number, "t")
    compiling.runners.change("churn", None, {"runtime": "original"}, "t", "the reference")
    app = build_app(compiling.settings.model_copy(update={"auth": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pointsman") as c:
            yield c


async def scrape(client: httpx.AsyncClient) -> Any:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)[0]


@pytest.mark.anyio
async def test_compiled_and_original_answer_alike_row_for_row_through_the_served_path(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    rows = churn_rows(300, seed=5)
    answers: dict[str, list[Any]] = {}
    for model in ("churn", "churnc"):
        r = await client.post(f"/v1/models/{model}/predict", json={"rows": rows})
        assert r.status_code == 200, r.text
        answers[model] = [r.json()]
        for row in rows[:20]:  # single rows too: the path a lone request takes
            r = await client.post(f"/v1/models/{model}/predict", json={"rows": [row]})
            answers[model].append(r.json())
    for original, compiled_ in zip(answers["churn"], answers["churnc"], strict=True):
        assert original["predictions"] == compiled_["predictions"]
        for p, q in zip(original["probabilities"], compiled_["probabilities"], strict=True):
            assert p.keys() == q.keys()
            assert max(abs(p[k] - q[k]) for k in p) <= compiled.TOLERANCE

    after = await scrape(client)
    name = "pointsman_runtime_answers_total"
    for model, runtime in (("churn", "original"), ("churnc", "compiled")):
        grew = value(after, name, model_name=model, runtime=runtime) - value(
            before, name, model_name=model, runtime=runtime
        )
        assert grew == 21
    assert value(after, name, model_name="churnc", runtime="original") == value(
        before, name, model_name="churnc", runtime="original"
    )

    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport) and isinstance(transport.app, FastAPI)
    pipeline: Pipeline = transport.app.state.pipeline
    assert pipeline.log is not None
    pipeline.log.ship()
    for model, runtime in (("churn", "original"), ("churnc", "compiled")):
        r = await client.get("/v1/predictions", params={"model": model, "limit": 100})
        records = r.json()["predictions"]
        assert len(records) == 21 and {x["runtime"] for x in records} == {runtime}


def test_a_compiled_model_that_disagrees_keeps_the_original_and_says_why(
    project: Project, churn_files: list[tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = churn_files[0]
    train = pd.read_csv(data)
    # A real ONNX file of a wrong model: the same pipeline fitted on the opposite labels.
    wrong = clone(joblib.load(path)).fit(train.drop(columns=[TARGET]), 1 - train[TARGET])
    convert = compiled.convert

    def convert_the_wrong_model(estimator: Any, columns: Any, out: Path, precision: str) -> None:
        convert(wrong, columns, out, precision)

    monkeypatch.setattr(compiled, "convert", convert_the_wrong_model)
    # Prepared in this process (not in a runner's child), so that the patch applies.
    registry = Registry(project.engine, project.registry.artifacts)
    record, _ = registry.register(submission("churn", churn_files[0]))
    c = record.compiled
    assert c is not None and not record.compiled_agreed
    assert c["label_agreement"] < 0.5 and c["max_probability_diff"] > 0.5
    assert "labels differ" in c["reason"] and "probabilities differ by up to" in c["reason"]
    assert c["artifact"]  # kept, so that the figures are those of a real file

    out = flat(run(project, "show", "churn", "1").output)
    assert "no: runs the original, because the compiled model disagrees" in out
    refused = run(project, "runners", "churn", "--version", "1", "--runtime", "compiled", ok=False)
    assert refused.exit_code == 1
    assert "version 1 cannot run its compiled runtime" in flat(refused.output)
    assert "labels differ" in flat(refused.output)
    with pytest.raises(CompiledRuntimeRefused):  # the whole model: the same refusal
        project.runners.change("churn", None, {"runtime": "compiled"}, "t")


@pytest.mark.anyio
async def test_auto_runs_the_original_where_the_compile_disagreed(
    project: Project, churn_files: list[tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled, "TOLERANCE", 0.0)  # no compile can be that exact
    registry = Registry(project.engine, project.registry.artifacts)
    record, _ = registry.register(submission("churn", churn_files[1]))
    assert record.compiled is not None and not record.compiled_agreed
    project.routes.deploy("churn", record.number, "t")
    frame_rows = churn_rows(3)
    async with serving(project) as s:
        columns, n, problems = records_to_columns(frame_rows, record.signature)
        answer = await s.predict("churn", build_frame(record.signature, columns, n, problems))
    assert answer.outputs.runtime == "original"


def test_an_estimator_skl2onnx_cannot_convert_is_registered_without_a_compiled_artifact(
    compiling: Project, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((60, 2)), columns=["a", "b"])
    y = (x["a"] > 0.5).astype(int)
    path = tmp_path / "spreading.joblib"
    joblib.dump(LabelSpreading().fit(x, y), path)
    data = tmp_path / "train.csv"
    x.assign(y=y).to_csv(data, index=False)
    record, created = compiling.registry.register(
        Submission(model="odd", path=path, training_data=data, target="y", user="t")
    )
    c = record.compiled
    assert created and c is not None and not record.compiled_agreed
    assert "skl2onnx cannot convert it" in c["reason"] and "artifact" not in c
    assert "no: runs the original, because skl2onnx cannot convert it" in flat(
        run(compiling, "show", "odd", "1").output
    )


def test_compile_on_demand_and_runtime_compiled_refused_until_it_agreed(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    project.registry.register(submission("churn", churn_files[0]))  # tests: not compiled
    refused = run(project, "runners", "churn", "--version", "1", "--runtime", "compiled", ok=False)
    assert refused.exit_code == 1
    assert "not compiled at register" in flat(refused.output)

    out = flat(run(project, "compile", "churn", "1").output)
    assert "yes: agreed with the original" in out and "labels 100.00% identical" in out
    report = json.loads(run(project, "compile", "churn", "1", "--json").output)
    assert report["compiled"]["agreed"] and report["compiled"]["rows"] == 4000
    out = flat(run(project, "runners", "churn", "--version", "1", "--runtime", "compiled").output)
    assert "runtime compiled" in out
    assert "compile" in flat(run(project, "audit", "--action", "compile").output)


def test_the_runtime_travels_with_the_outputs_on_the_wire() -> None:
    outputs = Outputs([1, 0], np.array([[0.2, 0.8], [0.9, 0.1]]), [0, 1])
    assert wire.decode_outputs(wire.encode_outputs(outputs, "compiled")).runtime == "compiled"
    assert wire.decode_outputs(wire.encode_outputs(outputs)).runtime is None
