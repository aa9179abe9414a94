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
from pointsman.project import Project
from pointsman.routing import Arm, Policy, Shadow
from pointsman.settings import Redaction
from tests.routing.test_traffic import apply, family, frame_of
from tests.serving import Serving, serving

pytestmark = pytest.mark.anyio
__all__ = ["family"]  # the fixture: models m v1..v6 (v3 raises on x % 10 == 7, v6 flips)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(family: Project) -> AsyncIterator[Serving]:
    family.settings = family.settings.model_copy(
        update={"log_redact": {"other": Redaction(drop=["x"])}, "log_hash_salt": "s"}
    )
    async with serving(family) as served:
        yield served


def stored(served: Serving, **filters: Any) -> list[dict[str, Any]]:
    log = served.pipeline.log
    assert log is not None
    log.ship()
    return find_predictions(served.project.engine, LogQuery(**filters), 1000).records


async def test_an_answer_is_spooled_before_predict_returns(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 100),)))
    answer = await served.predict("m", frame_of(1004.0, "cust-9"), "req-1")
    assert served.pipeline.log is not None
    (segment,) = segments_in(served.pipeline.log.spool.folder)
    (line,) = read_segment(segment)  # on disk already, before any shipping
    assert line["request_id"] == "req-1" and line["outputs"]["predictions"] == [1]
    (record,) = stored(served, request_id="req-1")
    assert record["model"] == "m" and record["version"] == 1 and record["role"] == "primary"
    assert record["route_revision"] == answer.route_revision
    assert record["inputs"] == {"x": [1004.0]}  # the routing key is not an input: not kept
    assert record["n_rows"] == 1 and record["error_code"] is None
    assert 0 < record["model_ms"] <= record["latency_ms"]
    assert record["model_ms"] >= 3.0  # v1 sleeps 3 ms


async def test_fallback_and_shadows_share_the_request_id(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(3, 100),), fallback=1, shadows=(Shadow(6),)))
    await served.predict("m", frame_of(1007.0), "req-2")
    assert served.pipeline.shadows is not None
    while served.pipeline.shadows.done < 1:
        await asyncio.sleep(0.01)
    records = {r["role"]: r for r in stored(served, request_id="req-2")}
    assert set(records) == {"fallback", "shadow"}
    assert records["fallback"]["version"] == 1
    fallback = records["fallback"]["extra"]["fallback"]
    assert fallback == {"from_version": 3, "reason": "error", "detail": "raised ValueError"}
    assert records["shadow"]["version"] == 6
    assert records["shadow"]["outputs"]["predictions"] == [1 - 0]  # v6 flips v1's 0


async def test_an_error_is_recorded_with_its_code_and_message(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(3, 100),)))
    with pytest.raises(ModelFailed):
        await served.predict("m", frame_of(1017.0), "req-3")
    (record,) = stored(served, request_id="req-3")
    assert record["error_code"] == "model_failed" and "req-3" in record["error"]
    assert record["outputs"] is None and record["version"] == 3
    assert stored(served, has_error=True) == [record]


async def test_redaction_happens_before_the_spool(served: Serving) -> None:
    served.project.registry.list_versions("m")
    assert served.pipeline.log is not None
    served.pipeline.log.redactor.rules["m"] = Redaction(hash=["x"])
    apply(served, Policy(arms=(Arm(1, 100),)))
    await served.predict("m", frame_of(1002.0), "req-4")
    raw = b"".join(p.read_bytes() for p in segments_in(served.pipeline.log.spool.folder))
    assert b"1002" not in raw
    (record,) = stored(served, request_id="req-4")
    hashed = hashlib.sha256(b"s1002.0").hexdigest()
    assert record["inputs"] == {"x": [hashed]}
    assert all(f["value"] == hashed for f in record["findings"] or [])


async def test_logging_off_spools_nothing(family: Project) -> None:
    family.settings = family.settings.model_copy(update={"log_predictions": False})
    async with serving(family) as served:
        apply(served, Policy(arms=(Arm(1, 100),)))
        await served.predict("m", frame_of(1.0))
        assert served.pipeline.log is None
    assert not (family.settings.project_path() / "spool").exists()


async def test_a_pinned_request_is_recorded_as_pinned_answered_or_failed(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 100),)))
    answer = await served.predict("m", frame_of(1004.0), "req-5", version=2)
    assert (answer.version, answer.role, answer.route_revision) == (2, "pinned", None)
    with pytest.raises(ModelFailed):
        await served.predict("m", frame_of(1017.0), "req-6", version=3)
    (ok,) = stored(served, request_id="req-5")
    (failed,) = stored(served, request_id="req-6")
    assert (ok["version"], ok["role"], ok["route_revision"]) == (2, "pinned", None)
    assert (failed["version"], failed["role"], failed["error_code"]) == (
        3,
        "pinned",
        "model_failed",
    )
