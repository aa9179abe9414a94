"""The Prometheus families pointsman records, and the cheap recorders the request path calls.

One set of module-level metrics per process. Under `pointsman serve --workers N` the serve
command points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, so
prometheus-client keeps every value in a per-process mmap file and a scrape of any worker
sums them all (see `exposition`). In one process they simply live in memory.

Labels are bounded: model names and versions the catalog knows, features of a signature,
the four protocols, status classes, fixed reasons. Never a request id or a raw path.
Names follow docs/metrics.md (base units, `_total` on counters, `model_name` labels).
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)

if TYPE_CHECKING:
    from pointsman.registry import VersionRecord
    from pointsman.types import Outputs

# A PROMETHEUS_MULTIPROC_DIR set for some other program must not break every command here:
# the unlabelled families below open their files as soon as they are defined.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# `_created` samples only in single-process mode would make the two modes differ.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=False)

# Requests take from well under a millisecond (a small tree) to seconds (a big batch).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
ROLES = ("primary", "fallback", "pinned", "shadow")

REQUESTS = Counter(
    "pointsman_inference_requests",
    "Inference requests by model, version, role, protocol and status class (2xx, 4xx, 5xx).",
    ["model_name", "model_version", "role", "protocol", "status"],
    registry=REGISTRY,
)
CLIENT_REQUESTS = Counter(
    "pointsman_client_requests",
    "Inference requests by model, client (the API key's name; past the first "
    "metrics_max_clients names a process sees, `other`) and status class.",
    ["model_name", "client", "status"],
    registry=REGISTRY,
)
OTHER_CLIENTS = "other"
DURATION = Histogram(
    "pointsman_inference_request_duration_seconds",
    "Time from reading the request to its answer, in seconds.",
    ["model_name", "model_version", "role", "protocol"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
MODEL_DURATION = Histogram(
    "pointsman_model_duration_seconds",
    "Time spent in the model itself, in seconds.",
    ["model_name", "model_version", "role"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_ROWS = Histogram(
    "pointsman_inference_batch_size",
    "Rows per inference request.",
    ["model_name"],
    buckets=ROWS_BUCKETS,
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "pointsman_inflight_requests",
    "Inference requests being answered now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
FINDINGS = Counter(
    "pointsman_validation_findings",
    "Validation findings by feature and rule; action is flag (served) or reject (422).",
    ["model_name", "model_version", "feature", "rule", "action"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "pointsman_fallbacks",
    "Requests a version failed (timeout, error, not_ready, circuit_open) and a fallback took.",
    ["model_name", "model_version", "reason"],
    registry=REGISTRY,
)
BREAKER_OPEN = Gauge(
    "pointsman_breaker_open",
    "1 while a version's circuit breaker is open or probing in any worker, else 0.",
    ["model_name", "model_version"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
SHADOW_COMPARED = Counter(
    "pointsman_shadow_compared_rows",
    "Rows a shadow version answered and that were compared with the primary's answer.",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
SHADOW_AGREED = Counter(
    "pointsman_shadow_agreed_rows",
    "Compared shadow rows that gave the primary's label (agreement = agreed / compared).",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
SHADOW_DROPPED = Counter(
    "pointsman_shadow_dropped",
    "Shadow copies not run because the shadow queue was full (shadow_queue_size).",
    registry=REGISTRY,
)
MODEL_LOADED = Gauge(
    "pointsman_model_loaded",
    "1 when a routed version is loaded and warm in every worker, else 0.",
    ["model_name", "model_version"],
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
SPOOL_BYTES = Gauge(
    "pointsman_log_spool_bytes",
    "Bytes of prediction records spooled on this host and not yet in the store.",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
SPOOL_BUDGET = Gauge(
    "pointsman_log_spool_budget_bytes",
    "The spool's budget: past it records are dropped or refused (log_spool_full_policy).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
LOG_DROPPED = Counter(
    "pointsman_log_dropped_records",
    "Prediction records dropped because the spool was past its budget.",
    registry=REGISTRY,
)
ALERTS_SENT = Counter(
    "pointsman_alerts_sent",
    "Alert notification attempts by channel kind and result (sent, retrying, failed, dropped).",
    ["channel", "result"],
    registry=REGISTRY,
)
CPU_SECONDS = Counter(
    "pointsman_process_cpu_seconds",
    "CPU time (user and system) of the server's worker processes, in seconds.",
    registry=REGISTRY,
)
RESIDENT_BYTES = Gauge(
    "pointsman_process_resident_memory_bytes",
    "Resident memory of the live worker processes, summed, in bytes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
AUTH_REFUSED = Counter(
    "pointsman_auth_refusals",
    "Requests refused before reaching an endpoint: unauthorized (401), forbidden (403), "
    "rate_limited (429).",
    ["reason"],
    registry=REGISTRY,
)
RUNNER_RESTARTS = Counter(
    "pointsman_runner_restarts",
    "Runner processes restarted, by reason: crash, oom, disk, timeout (a call past its time "
    "limit), cpu (the same, spinning), killed, load_failed, load_timeout.",
    ["model_name", "model_version", "reason"],
    registry=REGISTRY,
)
RUNNERS_READY = Gauge(
    "pointsman_runners_ready",
    "Runner processes of a version that are up and warm.",
    ["model_name", "model_version"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
RUNNERS_BUSY = Gauge(
    "pointsman_runners_busy",
    "Runner processes of a version running the model right now.",
    ["model_name", "model_version"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
RUNNER_QUEUE = Gauge(
    "pointsman_runner_queue_depth",
    "Requests waiting in a version's runners (summed over its replicas).",
    ["model_name", "model_version"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
RUNNER_MEMORY = Gauge(
    "pointsman_runner_resident_memory_bytes",
    "Resident memory of each runner process.",
    ["model_name", "model_version", "replica"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
RUNNER_REQUESTS = Counter(
    "pointsman_runner_requests",
    "Requests a version's runners answered (with a prediction or an error).",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
RUNNER_CALLS = Counter(
    "pointsman_runner_model_calls",
    "Calls a version's runners made to the model: fewer than pointsman_runner_requests when "
    "requests were batched (their ratio is the mean batch, in requests).",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
RUNTIME_ANSWERS = Counter(
    "pointsman_runtime_answers",
    "Answers by the runtime that computed them: original (the registered artifact) or "
    "compiled (its ONNX compile, where it agreed with the original).",
    ["model_name", "model_version", "runtime"],
    registry=REGISTRY,
)
QUEUE_FULL = Counter(
    "pointsman_queue_full",
    "Requests refused with 503 because a version's runner queue was full (load shedding).",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
CHANGES_LISTENING = Gauge(
    "pointsman_changes_listening",
    "1 while every worker listens for pushed changes (PostgreSQL); 0 while one polls.",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
LOOP_LAG = Gauge(
    "pointsman_event_loop_lag_seconds",
    "Worst event-loop lag of the live worker processes over their last heartbeat interval.",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
WORKERS = Gauge(
    "pointsman_workers",
    "Live worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


def use_multiprocess_values() -> None:
    """Record values from now on in PROMETHEUS_MULTIPROC_DIR's files (set after import)."""
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def is_multiprocess() -> bool:
    """Whether this process's values live in PROMETHEUS_MULTIPROC_DIR files."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class RequestRecorder:
    """The request path's recorder: label children cached, so a request costs a few µs."""

    def __init__(self, max_clients: int = 100) -> None:
        self._children: dict[tuple[str, ...], tuple[Any, Any, Any, Any]] = {}
        self._client_children: dict[tuple[str, str, str], Any] = {}
        self._clients: set[str] = set()
        self.max_clients = max_clients

    def client_answered(self, model: str, client: str | None, status: int) -> None:
        """Count a request under its client; the label stays bounded (`other` past the cap)."""
        name = client or "none"
        if name not in self._clients:
            if len(self._clients) >= self.max_clients:
                name = OTHER_CLIENTS
            else:
                self._clients.add(name)
        key = (model, name, status_class(status))
        child = self._client_children.get(key)
        if child is None:
            child = self._client_children[key] = CLIENT_REQUESTS.labels(*key)
        child.inc()

    def answered(
        self,
        model: str,
        version: str,
        role: str,
        protocol: str,
        status: int,
        total_s: float,
        model_s: float | None,
        rows: int | None,
    ) -> None:
        key = (model, version, role, protocol, status_class(status))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                REQUESTS.labels(*key),
                DURATION.labels(model, version, role, protocol),
                MODEL_DURATION.labels(model, version, role),
                BATCH_ROWS.labels(model),
            )
        children[0].inc()
        children[1].observe(total_s)
        if model_s is not None:
            children[2].observe(model_s)
        if rows is not None:
            children[3].observe(rows)


_by_runtime: dict[tuple[str, int, str], Any] = {}  # label children, cached


def by_runtime(version: VersionRecord, outputs: Outputs) -> Outputs:
    """Count `outputs` as one answer of the runtime that gave them; return them."""
    key = (version.model, version.number, outputs.runtime or "original")
    child = _by_runtime.get(key)
    if child is None:
        child = _by_runtime[key] = RUNTIME_ANSWERS.labels(key[0], str(key[1]), key[2])
    child.inc()
    return outputs


_cpu_counted = [0.0]  # this process's CPU seconds already added to CPU_SECONDS


def sample_process() -> None:
    """Add this process's CPU time since the last sample; set its resident memory."""
    cpu = time.process_time()
    if cpu > _cpu_counted[0]:
        CPU_SECONDS.inc(cpu - _cpu_counted[0])
        _cpu_counted[0] = cpu
    RESIDENT_BYTES.set(resident_bytes())


def resident_bytes() -> int:
    """Current resident set size; the peak where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if os.uname().sysname == "Darwin" else 1024)
