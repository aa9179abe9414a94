"""The pipeline spools a record per request and role: answers, fallbacks, shadows, errors."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pointsman.errors import ModelFailed
from pointsman.logstore.query import LogQuery, find_predictions
from pointsman.logstore.spool import read_segment, segments_in
from pointsman.pipeline import Pipeline
from pointsman.project import Project
from pointsman.routing import Arm, Policy, Shadow
from pointsman.routing.shadow import ShadowQueue
from pointsman.settings import Redaction
from tests.routing.test_traffic import apply, family, frame_of

pytestmark = pytest.mark.anyio
__all__ = ["family"]  # the fixture: models m v1..v6 (v3 raises on x % 10 == 7, v6 flips)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pipeline(family: Project) -> AsyncIterator[Pipeline]:
    family.settings = family.settings.model_copy(
        update={"log_redact": {"other": Redaction(drop=["x"])}, "log_hash_salt": "s"}
    )
    pipe = Pipeline(family)
    pipe.shadows = ShadowQueue(100, pipe._run_shadow)
    drain = asyncio.create_task(pipe.shadows.drain_forever())
    yield pipe
    drain.cancel()
    pipe.close()


def stored(pipe: Pipeline, **filters: Any) -> list[dict[str, Any]]:
    assert pipe.log is not None
    pipe.log.ship()
    return find_predictions(pipe.project.engine, LogQuery(**filters), 1000).records


async def test_an_answer_is_spooled_before_predict_returns(pipeline: Pipeline) -> None:
    apply(pipeline, Policy(arms=(Arm(1, 100),)))
    answer = await pipeline.predict(pipeline.target("m"), frame_of(1004.0, "cust-9"), "req-1")
    assert pipeline.log is not None
    (segment,) = segments_in(pipeline.log.spool.folder)
    (line,) = read_segment(segment)  # on disk already, before any shipping
    assert line["request_id"] == "req-1" and line["outputs"]["predictions"] == [1]
    (record,) = stored(pipeline, request_id="req-1")
    assert record["model"] == "m" and record["version"] == 1 and record["role"] == "primary"
    assert record["route_revision"] == answer.route_revision
    assert record["inputs"] == {"x": [1004.0]}  # the routing key is not an input: not kept
    assert record["n_rows"] == 1 and record["error_code"] is None
    assert 0 < record["model_ms"] <= record["latency_ms"]
    assert record["model_ms"] >= 3.0  # v1 sleeps 3 ms


async def test_fallback_and_shadows_share_the_request_id(pipeline: Pipeline) -> None:
    apply(pipeline, Policy(arms=(Arm(3, 100),), fallback=1, shadows=(Shadow(6),)))
    await pipeline.predict(pipeline.target("m"), frame_of(1007.0), "req-2")
    assert pipeline.shadows is not None
    while pipeline.shadows.done < 1:
        await asyncio.sleep(0.01)
    records = {r["role"]: r for r in stored(pipeline, request_id="req-2")}
    assert set(records) == {"fallback", "shadow"}
    assert records["fallback"]["version"] == 1
    assert records["fallback"]["extra"]["fallback"]["reason"] == "raised ValueError"
    assert records["shadow"]["version"] == 6
    assert records["shadow"]["outputs"]["predictions"] == [1 - 0]  # v6 flips v1's 0


async def test_an_error_is_recorded_with_its_code_and_message(pipeline: Pipeline) -> None:
    apply(pipeline, Policy(arms=(Arm(3, 100),)))
    with pytest.raises(ModelFailed):
        await pipeline.predict(pipeline.target("m"), frame_of(1017.0), "req-3")
    (record,) = stored(pipeline, request_id="req-3")
    assert record["error_code"] == "model_failed" and "req-3" in record["error"]
    assert record["outputs"] is None and record["version"] == 3
    assert stored(pipeline, has_error=True) == [record]


async def test_redaction_happens_before_the_spool(pipeline: Pipeline) -> None:
    pipeline.project.registry.list_versions("m")
    assert pipeline.log is not None
    pipeline.log.redactor.rules["m"] = Redaction(hash=["x"])
    apply(pipeline, Policy(arms=(Arm(1, 100),)))
    await pipeline.predict(pipeline.target("m"), frame_of(1002.0), "req-4")
    raw = b"".join(p.read_bytes() for p in segments_in(pipeline.log.spool.folder))
    assert b"1002" not in raw
    (record,) = stored(pipeline, request_id="req-4")
    hashed = hashlib.sha256(b"s1002.0").hexdigest()
    assert record["inputs"] == {"x": [hashed]}
    assert all(f["value"] == hashed for f in record["findings"] or [])


async def test_logging_off_spools_nothing(family: Project) -> None:
    family.settings = family.settings.model_copy(update={"log_predictions": False})
    pipe = Pipeline(family)
    apply(pipe, Policy(arms=(Arm(1, 100),)))
    await pipe.predict(pipe.target("m"), frame_of(1.0))
    assert pipe.log is None
    assert not (family.settings.project_path() / "spool").exists()
    pipe.close()
