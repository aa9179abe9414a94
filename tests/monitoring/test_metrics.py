"""/metrics: every family PROTOCOLS.md §5 and issue 6 name, parsed back with prometheus-client.

The in-process app shares this test process's metrics with every other test, so the
assertions compare a scrape before and after the requests. Two real worker processes
check that a scrape of either one sums both.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.catalog import Catalog
from pointsman.logstore.query import LogQuery, find_predictions
from pointsman.monitoring.drift import Thresholds
from pointsman.monitoring.monitor import drift_report, store_report
from pointsman.project import Project
from pointsman.routing.policy import Arm, Policy, Shadow
from tests.api.conftest import register_churn, register_flaky_churn
from tests.conftest import IRIS_COLUMNS, Server, admin_headers, churn_rows, register_iris

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, labels), and the family names (counters without `_total`)."""
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(
    project: Project, iris_files: tuple[Path, Path], churn_files: list[tuple[Path, Path]]
) -> AsyncIterator[httpx.AsyncClient]:
    """churn v1 primary with v2 as a shadow, iris v1: an admin client of the app."""
    register_churn(project, churn_files)
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    policy = Policy(arms=(Arm(1),), shadows=(Shadow(2),))
    project.routes.apply("churn", policy, "t", "metrics test")
    app = build_app(project.settings)
    headers = admin_headers(project)  # before the app starts: it loads the keys then
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pointsman", headers=headers
        ) as c:
            yield c


async def scrape(client: httpx.AsyncClient) -> tuple[Samples, set[str]]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.mark.anyio
async def test_requests_latency_findings_and_state_by_model_version_role(
    client: httpx.AsyncClient, project: Project
) -> None:
    before, _ = await scrape(client)
    rows = churn_rows(3)
    for _ in range(4):
        answer = await client.post("/v1/models/churn/predict", json={"rows": rows})
        assert answer.status_code == 200
    pinned = await client.post("/v1/models/churn/versions/2/predict", json={"rows": rows[:1]})
    assert pinned.status_code == 200
    v2 = {
        "inputs": [
            {"name": c, "shape": [1, 1], "datatype": "FP64", "data": [v]}
            for c, v in zip(IRIS_COLUMNS, (5.1, 3.5, 1.4, 0.2), strict=True)
        ]
    }
    assert (await client.post("/v2/models/iris/infer", json=v2)).status_code == 200
    flagged = dict(rows[0], monthly_charges=10_000.0)  # far out of the training range
    assert (await client.post("/v1/models/churn/predict", json={"rows": [flagged]})).is_success
    coerced = dict(rows[0], tenure_months="12")  # a string for a number: refused by default
    bad = await client.post("/v1/models/churn/predict", json={"rows": [coerced]})
    assert bad.status_code == 422, bad.text
    unknown = await client.post("/v1/models/nosuch/predict", json={"rows": rows})
    assert unknown.status_code == 404
    await _wait_for_shadows(client, before, 5)

    after, families = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "pointsman_inference_requests_total"
    churn_v1 = {"model_name": "churn", "model_version": "1"}
    assert delta(requests, role="primary", protocol="native", status="2xx", **churn_v1) == 5
    assert delta(requests, role="pinned", status="2xx", model_name="churn", model_version="2") == 1
    assert delta(requests, model_name="iris", protocol="v2", status="2xx") == 1
    assert delta(requests, model_name="churn", status="4xx") == 1
    # A model nobody registered is counted, but its name is never a label value.
    assert delta(requests, model_name="", status="4xx") == 1
    assert not any(("model_name", "nosuch") in ls for _, ls in after)
    # Shadows: one copy of every routed churn request, compared row by row.
    assert delta(requests, role="shadow", model_name="churn", model_version="2") == 5
    assert delta("pointsman_shadow_compared_rows_total", model_name="churn") == 4 * 3 + 1
    agreed = delta("pointsman_shadow_agreed_rows_total", model_name="churn")
    assert 0 <= agreed <= 13
    # Latency histograms in seconds: every request (the refused one too), and model time
    # of those that reached the model.
    duration = "pointsman_inference_request_duration_seconds"
    assert delta(duration + "_count", role="primary", **churn_v1) == 6
    assert 0 < delta(duration + "_sum", role="primary", **churn_v1) < 6 * 10
    assert delta(duration + "_bucket", le="+Inf", role="primary", **churn_v1) == 6
    model_time = "pointsman_model_duration_seconds"
    assert delta(model_time + "_count", role="primary", **churn_v1) == 5
    primary = {"role": "primary", **churn_v1}
    assert delta(model_time + "_sum", **primary) < delta(duration + "_sum", **primary)
    assert delta("pointsman_inference_batch_size_sum", model_name="churn") >= 4 * 3 + 1 + 1
    # Validation findings, by feature and rule.
    findings = "pointsman_validation_findings_total"
    assert delta(findings, feature="monthly_charges", action="flag", **churn_v1) >= 1
    assert (
        delta(findings, feature="tenure_months", rule="coerced", action="reject", **churn_v1) == 1
    )
    # State read at scrape time: the route in force and its weights, what is loaded.
    revision = project.routes.get("churn").revision
    assert value(after, "pointsman_route_revision", model_name="churn") == revision
    assert value(after, "pointsman_route_weight", **churn_v1) == 1.0
    assert value(after, "pointsman_model_loaded", **churn_v1) == 1
    assert value(after, "pointsman_model_loaded", model_name="churn", model_version="2") == 1
    assert value(after, "pointsman_build_info") == 1
    assert value(after, "pointsman_inflight_requests") == 0
    # Process, spool and breaker families are there from the first scrape.
    assert value(after, "pointsman_process_cpu_seconds_total") > 0
    assert value(after, "pointsman_process_resident_memory_bytes") > 10_000_000
    assert value(after, "pointsman_log_spool_budget_bytes") == (
        project.settings.log_spool_budget_bytes
    )
    for family in (
        "pointsman_inference_requests", "pointsman_inference_request_duration_seconds",
        "pointsman_model_duration_seconds", "pointsman_validation_findings",
        "pointsman_fallbacks", "pointsman_breaker_open", "pointsman_shadow_compared_rows",
        "pointsman_drift_psi", "pointsman_route_revision", "pointsman_log_spool_bytes",
        "pointsman_log_dropped_records", "pointsman_process_cpu_seconds", "pointsman_workers",
    ):  # fmt: skip
        assert family in families


async def _wait_for_shadows(client: httpx.AsyncClient, before: Samples, n: int) -> None:
    """Shadows run after the answers: wait until they are counted."""
    name = "pointsman_inference_requests_total"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now, _ = await scrape(client)
        if value(now, name, role="shadow") - value(before, name, role="shadow") >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the shadow copies were not counted within 10 s")


@pytest.mark.anyio
async def test_fallbacks_and_the_breaker(
    client: httpx.AsyncClient,
    project: Project,
    churn_files: list[tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    """A version that fails: each failure is a fallback, and the breaker opens after three."""
    switch = tmp_path / "broken"
    flaky = register_flaky_churn(project, churn_files, switch)
    policy = Policy(arms=(Arm(flaky),), fallback=2, breaker_failures=3, breaker_pause_s=600)
    project.routes.apply("churn", policy, "t", "metrics test")
    app = client._transport.app  # type: ignore[attr-defined]
    await _refresh(app.state.catalog)
    switch.touch()
    before, _ = await scrape(client)
    for _ in range(5):
        answer = await client.post("/v1/models/churn/predict", json={"rows": churn_rows(1)})
        assert answer.status_code == 200 and answer.json()["version"] == 2
    after, _ = await scrape(client)
    fallbacks = "pointsman_fallbacks_total"
    churn_v1 = {"model_name": "churn", "model_version": str(flaky)}
    assert (
        value(after, fallbacks, reason="error", **churn_v1)
        - value(before, fallbacks, reason="error", **churn_v1)
        == 3
    )
    assert (
        value(after, fallbacks, reason="circuit_open", **churn_v1)
        - value(before, fallbacks, reason="circuit_open", **churn_v1)
        == 2
    )
    assert value(after, "pointsman_breaker_open", **churn_v1) == 1
    requests = "pointsman_inference_requests_total"
    assert (
        value(after, requests, role="fallback", model_version="2", status="2xx")
        - value(before, requests, role="fallback", model_version="2", status="2xx")
        == 5
    )


async def _refresh(catalog: Catalog) -> None:
    """Refresh until the newest route is in force (its versions' runners are warm)."""
    deadline = time.monotonic() + 60
    await anyio.to_thread.run_sync(catalog.refresh)
    while catalog.pending:
        assert time.monotonic() < deadline, catalog.pending
        await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(catalog.refresh)


@pytest.mark.anyio
async def test_drift_scores_per_feature_come_from_the_store(
    client: httpx.AsyncClient, project: Project
) -> None:
    rows = churn_rows(200, seed=3)
    for i in range(0, 200, 50):
        shifted = [
            dict(r, monthly_charges=float(r["monthly_charges"]) + 60) for r in rows[i : i + 50]
        ]  # type: ignore[arg-type]
        assert (await client.post("/v1/models/churn/predict", json={"rows": shifted})).is_success
    app = client._transport.app  # type: ignore[attr-defined]
    log = app.state.pipeline.log
    await anyio.to_thread.run_sync(log.ship)
    report = drift_report(project, "churn", 1, timedelta(hours=1), Thresholds(0.1, 0.25, 100))
    store_report(project.engine, report)
    samples, _ = await scrape(client)
    psi = value(samples, "pointsman_drift_psi", model_name="churn", feature="monthly_charges")
    assert psi == pytest.approx(
        next(f.psi for f in report.features if f.feature == "monthly_charges")
    )
    assert psi > 0.25
    assert value(samples, "pointsman_drift_psi", model_name="churn", feature="tenure_months") < psi


@pytest.mark.anyio
async def test_metrics_need_read_on_every_model_unless_open(project: Project) -> None:
    app = build_app(project.settings)
    book = KeyBook(project.engine)
    reader, _ = book.create("scraper", ["read:*"], "t")
    one_model, _ = book.create("one", ["read:churn", "predict:*"], "t")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as c:
            assert (await c.get("/metrics")).status_code == 401
            refused = await c.get("/metrics", headers={"Authorization": f"Bearer {one_model}"})
            assert refused.status_code == 403 and "read:*" in refused.text
            ok = await c.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
            assert ok.status_code == 200 and "pointsman_build_info" in ok.text
            refusals, _ = parse(ok.text)
            for reason in ("unauthorized", "forbidden"):  # both refusals above are counted
                assert value(refusals, "pointsman_auth_refusals_total", reason=reason) >= 1
    open_app = build_app(project.settings.model_copy(update={"metrics_open": True}))
    async with open_app.router.lifespan_context(open_app):
        transport = httpx.ASGITransport(app=open_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as c:
            assert (await c.get("/metrics")).status_code == 200
            assert (await c.get("/v1/models")).status_code == 401  # only /metrics opened


def requests_in(path: Path) -> float:
    """The churn requests one worker's counter file holds."""
    total = 0.0
    for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)):
        if '"pointsman_inference_requests_total"' in key and '"churn"' in key:
            total += count
    return total


def test_two_workers_are_summed_by_a_scrape_of_either(
    project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    """Each scrape lands on one worker; every one of them reports both workers' requests."""
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    headers = admin_headers(project)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    server = Server(
        project.settings.project_path(),
        workers=2,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
            deadline = time.monotonic() + 60
            while value(parse(http.get("/metrics").text)[0], "pointsman_workers") < 2:
                assert time.monotonic() < deadline, "the second worker never started"
                time.sleep(0.2)
            for _ in range(60):  # new connections: the kernel spreads them over the workers
                with httpx.Client(base_url=server.url, timeout=10, headers=headers) as one:
                    answer = one.post("/v1/models/churn/predict", json={"rows": churn_rows(2)})
                    assert answer.status_code == 200
            files = sorted(metrics_dir.glob("counter_*.db"))
            assert "counter_1.db" not in {p.name for p in files}  # an earlier run's: cleared
            # The supervisor's own (it imported the families too, and counts nothing) ...
            supervisor = metrics_dir / f"counter_{server.process.pid}.db"
            files = [p for p in files if p != supervisor]
            assert len(files) == 2, files  # ... and one file per worker
            per_worker = [requests_in(p) for p in files]
            assert sum(per_worker) == 60, per_worker
            for _ in range(6):
                samples, _ = parse(http.get("/metrics").text)
                requests = "pointsman_inference_requests_total"
                assert value(samples, requests, model_name="churn", status="2xx") == 60
                duration = "pointsman_inference_request_duration_seconds_count"
                assert value(samples, duration, model_name="churn") == 60
                assert value(samples, "pointsman_workers") == 2
                assert value(samples, "pointsman_process_resident_memory_bytes") > 2 * 10**7
    finally:
        server.stop()
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(metrics_dir)


def test_one_worker_with_a_multiprocess_folder_of_its_own_counts_alone(
    project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    """A PROMETHEUS_MULTIPROC_DIR set by the user (say, for gunicorn) with one worker: an
    earlier run's files are cleared, and a folder that does not exist yet is made."""
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    headers = admin_headers(project)
    metrics_dir = tmp_path / "not" / "yet"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = Server(project.settings.project_path(), workers=1, env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
            for _ in range(3):
                assert http.post(
                    "/v1/models/churn/predict", json={"rows": churn_rows(1)}
                ).is_success
            samples, _ = parse(http.get("/metrics").text)
    finally:
        server.stop()
    assert value(samples, "pointsman_inference_requests_total", model_name="churn") == 3
    assert value(samples, "pointsman_workers") == 1
    (metrics_dir / "counter_1.db").write_bytes(b"left over")
    server = Server(project.settings.project_path(), workers=1, env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as http:
            samples, _ = parse(http.get("/metrics").text)
    finally:
        server.stop()
    assert not (metrics_dir / "counter_1.db").exists()
    assert value(samples, "pointsman_inference_requests_total", model_name="churn") == 0


@pytest.mark.anyio
async def test_each_prediction_record_has_the_labels_of_its_metric_samples(
    client: httpx.AsyncClient,
    project: Project,
    churn_files: list[tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    """Routed, shadowed, pinned and fallback requests: record (version, role) = metric labels."""
    app = client._transport.app  # type: ignore[attr-defined]
    catalog, pipeline = app.state.catalog, app.state.pipeline
    body = {"rows": churn_rows(1)}

    async def labels_of(path: str, rid: str) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
        """The (version, role) of the request's records, and of the samples it added."""
        before, _ = await scrape(client)
        answer = await client.post(path, json=body, headers={"X-Request-ID": rid})
        assert answer.status_code == 200, answer.text
        await pipeline.shadows.queue.join()  # shadows run after the answer
        after, _ = await scrape(client)
        counted = {
            (int(dict(ls)["model_version"]), dict(ls)["role"])
            for (name, ls), v in after.items()
            if name == "pointsman_inference_requests_total"
            and dict(ls)["model_name"] == "churn"
            and v > before.get((name, ls), 0)
        }
        pipeline.log.ship()
        records = find_predictions(project.engine, LogQuery(request_id=rid), 10).records
        return {(r["version"], r["role"]) for r in records}, counted

    assert (
        await labels_of("/v1/models/churn/predict", "routed")
        == ({(1, "primary"), (2, "shadow")},) * 2
    )
    assert (
        await labels_of("/v1/models/churn/versions/2/predict", "pinned") == ({(2, "pinned")},) * 2
    )
    switch = tmp_path / "broken"
    flaky = register_flaky_churn(project, churn_files, switch)
    project.routes.apply("churn", Policy(arms=(Arm(flaky),), fallback=2), "t", "fallback test")
    await _refresh(catalog)
    switch.touch()
    assert await labels_of("/v1/models/churn/predict", "fell") == ({(2, "fallback")},) * 2
