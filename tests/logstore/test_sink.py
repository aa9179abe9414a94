"""CloudEvents sink: KServe-shaped event pairs to a receiver on 127.0.0.1; a dead one costs nil."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pointsman.logstore.query import LogQuery, count_predictions
from pointsman.logstore.shipper import Shipper
from pointsman.logstore.sink import REQUEST_TYPE, RESPONSE_TYPE, CloudEventsSink
from pointsman.logstore.spool import Spool
from pointsman.logstore.writer import PredictionLog
from pointsman.project import Project
from tests.conftest import free_port
from tests.logstore.test_spool import record


class Receiver:
    """An HTTP server on 127.0.0.1 keeping every event; fails the first `failures` posts."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[tuple[dict[str, str], Any]] = []
        self.failures = failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(503)
                else:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    outer.events.append((headers, json.loads(body)))
                    self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.server.shutdown()
    r.server.server_close()


def answered(request_id: str) -> dict[str, Any]:
    return record(
        request_id,
        inputs={"age": [30, 41], "plan": ["basic", "premium"]},
        outputs={
            "predictions": [0, 1],
            "probabilities": [[0.9, 0.1], [0.2, 0.8]],
            "classes": [0, 1],
        },
    )


def test_each_answer_becomes_a_request_and_response_event_with_one_id(
    receiver: Receiver, tmp_path: Path, project: Project
) -> None:
    sink = CloudEventsSink(receiver.url, "/pointsman-test", backoff_s=0.01)
    spool = Spool(tmp_path / "spool", segment_bytes=1 << 20, budget_bytes=1 << 30)
    spool.append(answered("req-1"))
    spool.append(record("req-1", role="shadow", version=2))  # not sent: not the answer
    spool.append(record("req-2", error_code="model_failed", error="x"))  # not sent: failed
    spool.seal()
    Shipper(spool.root, project.engine, sink.offer).ship()
    receiver.wait_for(2)
    sink.close()
    spool.close()
    assert count_predictions(project.engine, LogQuery()) == 3  # the store has them all
    (req_headers, req_body), (resp_headers, resp_body) = receiver.events
    assert req_headers["ce-type"] == REQUEST_TYPE and resp_headers["ce-type"] == RESPONSE_TYPE
    assert req_headers["ce-id"] == resp_headers["ce-id"] == "req-1"
    for headers in (req_headers, resp_headers):
        assert headers["ce-specversion"] == "1.0" and headers["ce-source"] == "/pointsman-test"
        assert headers["ce-inferenceservicename"] == "churn" and headers["ce-modelversion"] == "1"
        assert headers["content-type"] == "application/json"
        assert headers["ce-time"] == "2023-11-14T22:13:20Z"
    assert req_body == {"columns": ["age", "plan"], "data": [[30, "basic"], [41, "premium"]]}
    assert resp_body["predictions"] == [0, 1]
    assert resp_body["probabilities"] == [{"0": 0.9, "1": 0.1}, {"0": 0.2, "1": 0.8}]
    assert sink.sent == 2 and sink.failed == 0  # the two 503s were retried


def test_a_sink_that_is_down_costs_nothing_but_its_events(tmp_path: Path, project: Project) -> None:
    sink = CloudEventsSink(f"http://127.0.0.1:{free_port()}/", "/p", retries=1, backoff_s=0.01)
    spool = Spool(tmp_path / "spool", segment_bytes=1 << 20, budget_bytes=1 << 30)
    for i in range(5):
        spool.append(answered(f"r{i}"))
    start = time.perf_counter()
    spool.seal()
    Shipper(spool.root, project.engine, sink.offer).ship()
    assert time.perf_counter() - start < 2  # shipping does not wait for the sink
    assert count_predictions(project.engine, LogQuery()) == 5
    sink.close(wait_s=5)
    spool.close()
    assert sink.failed == 10 and sink.sent == 0


def test_a_full_queue_drops_and_counts(project: Project) -> None:
    sink = CloudEventsSink(f"http://127.0.0.1:{free_port()}/", "/p", queue_size=2, retries=3)
    sink.offer([answered(f"r{i}") for i in range(50)])
    assert sink.dropped >= 47
    sink.close(wait_s=0.1)


def test_the_setting_wires_the_sink_behind_the_shipper(
    receiver: Receiver, project: Project
) -> None:
    settings = project.settings.model_copy(update={"log_sink_url": receiver.url})
    prediction_log = PredictionLog(settings, project.engine)
    assert prediction_log.sink is not None
    prediction_log.sink.backoff_s = 0.01
    prediction_log.spool.append(answered("wired"))
    prediction_log.ship()
    receiver.wait_for(2)
    prediction_log.close()
    assert [h["ce-id"] for h, _ in receiver.events] == ["wired", "wired"]
