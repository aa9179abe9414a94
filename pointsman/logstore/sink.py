"""An optional CloudEvents sink: each answered request as KServe's logger sends it.

Binary mode, spec 1.0: a `org.kubeflow.serving.inference.request` event and a
`org.kubeflow.serving.inference.response` event with the same `ce-id` (the request id), so
consumers built for KServe's payload logger join them as they do there. Fed by the shipper
once records are committed (never from the request path), through a bounded queue drained
by one thread with retries and backoff: a sink that is slow or down costs serving nothing;
past the queue, events are dropped and counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

log = logging.getLogger("pointsman.logstore")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


class CloudEventsSink:
    """POSTs a request/response event pair per answered record to `url`."""

    def __init__(
        self,
        url: str,
        source: str,
        queue_size: int = 1000,
        retries: int = 5,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.source = source
        self.retries = retries
        self.backoff_s = backoff_s
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self.sent = self.failed = self.dropped = 0
        self.timeout_s = timeout_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="pointsman-sink", daemon=True)
        self._thread.start()

    def offer(self, records: list[dict[str, Any]]) -> None:
        """Queue the answered records' events; never blocks (a full queue drops and counts)."""
        for record in records:
            if record.get("role") == "shadow" or record.get("error_code"):
                continue  # as KServe: the answer the caller got, when it was a success
            try:
                self.queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("CloudEvents sink queue full: %d events dropped", self.dropped)

    def close(self, wait_s: float = 5.0) -> None:
        """Send what is queued (for up to `wait_s`), then stop."""
        deadline = time.monotonic() + wait_s
        while not self.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopping.set()  # no more retries: what is left is dropped
        with contextlib.suppress(queue.Full):  # then the daemon thread ends with the process
            self.queue.put_nowait(None)
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def _drain(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:  # owned by this thread alone
            while (record := self.queue.get()) is not None:
                for event_type, body in pair_of(record):
                    if self._post(client, record, event_type, body):
                        self.sent += 1
                    else:
                        self.failed += 1

    def _post(
        self, client: httpx.Client, record: dict[str, Any], event_type: str, body: bytes
    ) -> bool:
        headers = headers_of(record, event_type, self.source)
        for attempt in range(self.retries + 1):
            try:
                response = client.post(self.url, content=body, headers=headers)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        log.warning("CloudEvents sink refused an event: %s", response.status_code)
                        return False
                    return True
            except httpx.HTTPError:
                pass
            if attempt < self.retries and not self._stopping.wait(self.backoff_s * 2**attempt):
                continue
            break
        log.warning("CloudEvents sink %s unreachable: event %s dropped", self.url, headers["ce-id"])
        return False


def pair_of(record: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The request body (native columnar JSON) and the response body (the native answer)."""
    inputs = record.get("inputs") or {}
    names = list(inputs)
    rows = [list(row) for row in zip(*(inputs[n] for n in names), strict=True)] if names else []
    request = {"columns": names, "data": rows}
    outputs = record.get("outputs") or {}
    response: dict[str, Any] = {
        "model": record["model"],
        "version": record["version"],
        "request_id": record["request_id"],
        "predictions": outputs.get("predictions"),
    }
    if outputs.get("probabilities") is not None:
        classes = [str(c) for c in outputs.get("classes") or []]
        response["probabilities"] = [
            dict(zip(classes, row, strict=False)) for row in outputs["probabilities"]
        ]
    return [(REQUEST_TYPE, orjson.dumps(request)), (RESPONSE_TYPE, orjson.dumps(response))]


def headers_of(record: dict[str, Any], event_type: str, source: str) -> dict[str, str]:
    """Binary-mode CloudEvents headers, with KServe's extensions where they mean something."""
    when = record["time"]
    stamp = datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else when
    return {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": str(record["request_id"]),
        "ce-type": event_type,
        "ce-source": source,
        "ce-time": stamp.isoformat().replace("+00:00", "Z"),
        "ce-inferenceservicename": str(record["model"]),
        "ce-component": "predictor",
        "ce-endpoint": str(record["role"]),
        "ce-modelversion": str(record["version"]),
    }
