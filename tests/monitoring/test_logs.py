"""The server log: JSON lines with the request's fields, no secrets, and a store outage in two
lines rather than a traceback per job run."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pointsman.monitoring.logs import REQUEST, JsonFormatter, bind, logging_config, scrub
from pointsman.project import Project
from pointsman.store.outage import OutageLog, is_store_outage, probe_of
from tests.conftest import Server, admin_headers, register_iris

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    out = logging.LogRecord("pointsman.test", logging.WARNING, __file__, 1, message, args, None)
    out.__dict__.update(extra)
    return out


def test_a_json_line_carries_the_requests_fields_bound_below_the_endpoint() -> None:
    token = REQUEST.set({})
    try:
        bind(request_id="r-1", model="iris")
        bind(version=3, ignored=None)
        line = json.loads(JsonFormatter().format(record("served %s", "it", status=200)))
    finally:
        REQUEST.reset(token)
    assert line["level"] == "warning"
    assert line["logger"] == "pointsman.test"
    assert line["message"] == "served it"
    assert (line["request_id"], line["model"], line["version"]) == ("r-1", "iris", 3)
    assert line["status"] == 200
    assert line["time"].endswith("+00:00")


def test_outside_a_request_a_line_has_no_request_fields() -> None:
    line = json.loads(JsonFormatter().format(record("tick")))
    assert not {"request_id", "model", "version"} & set(line)


@pytest.mark.parametrize(
    "text",
    [
        "key pk_Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTA rejected",
        "Authorization: Bearer pk_Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTA",
        "headers {'x-api-key': 'pk_Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTA'}",
        "posting to https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX failed",
        "connecting to postgresql://admin:hunter2@db.internal/pointsman",
    ],
)
def test_secrets_are_masked_in_messages(text: str) -> None:
    masked = scrub(text)
    for secret in ("Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTA", "XXXXsecretXXXX", "hunter2"):
        assert secret not in masked


def test_a_traceback_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("bad pk_Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTA")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    line = json.loads(text)
    assert "ValueError" in line["exception"] and "Zm9vYm" not in line["exception"]


def test_the_config_routes_uvicorn_and_pointsman_through_one_formatter() -> None:
    config = logging_config("json", "info")
    assert config["formatters"]["main"]["()"].endswith("JsonFormatter")
    assert {"pointsman", "uvicorn", "uvicorn.access"} <= set(config["loggers"])


# -- a store outage ---------------------------------------------------------------------
def unreachable_error() -> Exception:
    """A real driver error: nothing listens on port 1."""
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        with engine.connect():
            pass
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("port 1 answered")


def test_an_outage_is_one_warning_when_it_starts_and_one_line_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = OutageLog(lambda: "12 bytes spooled", clock=lambda: now[0])
    error = unreachable_error()
    assert is_store_outage(error)
    caplog.set_level(logging.DEBUG, logger="pointsman.store")
    with caplog.at_level(logging.INFO, logger="pointsman.store"):
        for _ in range(50):  # every job fails on every run for a while
            for job in ("route poll", "log shipping", "alerts"):
                assert outage.failed(job, error)
        now[0] = 130.0
        outage.succeeded("route poll")
        outage.succeeded("log shipping")
        assert outage.is_down  # alerts has not run cleanly yet
        outage.succeeded("alerts")
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    start, end = (r.getMessage() for r in lines)
    assert "store unreachable" in start and "12 bytes spooled" in start
    assert lines[0].exc_info is None  # no traceback
    assert "reachable again after 30 s" in end
    assert not outage.is_down and outage.outages == 1


def test_a_bug_in_a_job_is_not_an_outage() -> None:
    outage = OutageLog()
    assert not outage.failed("drift", KeyError("x"))
    assert not outage.is_down


# -- the real server ----------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_json_server_log_has_an_access_line_per_request_and_never_the_key(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "test")
    headers = admin_headers(project)
    key = headers["Authorization"].split()[1]
    server = Server(project.settings.project_path(), args=["--log-format", "json", "--access-log"])
    try:
        url = f"{server.url}/v1/models/iris/predict"
        answer = httpx.post(url, json={"rows": [IRIS_ROW]}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        rid = answer.headers["x-request-id"]
        refused = httpx.post(url, json={"rows": [IRIS_ROW]}, timeout=30)  # no key
        assert refused.status_code == 401
        httpx.get(f"{server.url}/healthz", headers={"X-API-Key": key}, timeout=30)
    finally:
        server.stop()
    text = server.log.read_text()
    assert key not in text and key[3:20] not in text
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    assert lines, text
    access = [x for x in lines if x["logger"] == "pointsman.access"]
    served = next(x for x in access if x.get("request_id") == rid)
    assert served["status"] == 200 and served["model"] == "iris" and served["version"] == 1
    assert served["client"] == "tests" and served["path"] == "/v1/models/iris/predict"
    assert any(x["status"] == 401 for x in access)
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    # The HTTP server's own lines too (Server inherits POINTSMAN_HTTP_SERVER).
    own = "_granian" if os.environ.get("POINTSMAN_HTTP_SERVER") == "granian" else "uvicorn"
    assert any(x["logger"].startswith(own) for x in lines), text


def test_a_mistake_in_a_statement_is_not_an_outage(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select * from nowhere"))
    except sa.exc.OperationalError as exc:
        assert not is_store_outage(exc)
    else:
        raise AssertionError("the table exists")
    finally:
        engine.dispose()


def test_a_job_running_from_a_cache_does_not_end_the_outage_while_the_store_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    up = sa.create_engine(f"sqlite:///{tmp_path / 'up.db'}")
    probe = {"engine": down}
    outage = OutageLog(probe=lambda: probe_of(probe["engine"])())
    try:
        with caplog.at_level(logging.INFO, logger="pointsman.store"):
            outage.failed("runner supervision", unreachable_error())
            outage.succeeded("runner supervision")  # from its cache: the store is still down
            assert outage.is_down
            probe["engine"] = up
            outage.succeeded("runner supervision")
            assert not outage.is_down
        assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
            "store unreachable",
            "store reachable again after 0 s",
        ]
    finally:
        down.dispose()
        up.dispose()
