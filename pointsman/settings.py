"""Settings: each option once, with its default, environment variable and help text.

Read once by the CLI (or `build_app`) from, in order of precedence: command-line flags,
`POINTSMAN_*` environment variables, the project's `pointsman.toml`, the defaults below.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pointsman.errors import ConfigError

SETTINGS_FILE = "pointsman.toml"


class Redaction(BaseModel):
    """What the prediction log keeps of one model's inputs: fields dropped, hashed, truncated."""

    model_config = ConfigDict(extra="forbid")

    drop: list[str] = []
    hash: list[str] = []
    truncate: dict[str, int] = {}


class AlertRuleConfig(BaseModel):
    """One `[[alerts]]` table of pointsman.toml: an alert rule, read-only to the CLI and API."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    model: str = "*"
    when: str
    window: str = "5m"
    for_: str = Field(default="0s", alias="for")
    severity: str = "warn"
    notify: list[str] = []
    cooldown: str = "1h"
    description: str = ""


class GateConfig(BaseModel):
    """The `[gate]` table of pointsman.toml: thresholds of `pointsman gate` (and the defaults
    of `diff` and `bench` when their options are not given)."""

    model_config = ConfigDict(extra="forbid")

    max_flip_rate: float | None = Field(0.02, ge=0, le=1)
    max_mean_abs_diff: float | None = Field(None, ge=0)
    max_p99_ratio: float | None = Field(1.2, gt=0)
    bench_slack_ms: float = Field(1.0, ge=0)
    max_refused_rate: float = Field(0.0, ge=0, le=1)
    bench_rows: list[int] = Field(default_factory=lambda: [1, 64])
    bench_concurrency: list[int] = Field(default_factory=lambda: [1, 8])
    bench_requests: int = Field(200, ge=10)


class RunnerConfig(BaseModel):
    """One `[runners.MODEL]` (or `[runners."MODEL:VERSION"]`, `[runners."*"]`) table of
    pointsman.toml: where and under which limits a model's runners run. Fields left out
    keep their defaults; `pointsman runners` changes made in the store win over these."""

    model_config = ConfigDict(extra="forbid")

    replicas: int | None = None
    cpu: float | str | None = None  # CPUs, or "none"
    memory: str | int | None = None  # "1GiB", "512MiB", bytes, or "none"
    disk: str | int | None = None
    timeout: str | float | None = None  # "2s", "500ms" or seconds
    queue: int | None = None
    max_batch_rows: int | None = None
    max_wait_ms: float | None = None
    runtime: str | None = None  # auto | original | compiled


class ReplicaSettings(BaseSettings):
    """What several replicas on one PostgreSQL share: pushed changes, rate limits in Redis
    (docs/replicas.md). `Settings` holds these too; docs/settings.md lists them last."""

    # Only `Settings` is ever validated: the classes it is built from in steps (this one,
    # StorageSettings, AlertSettings) leave their validators unbuilt, which every command
    # would otherwise pay for at start-up. `Settings` sets it back to False.
    model_config = SettingsConfigDict(defer_build=True)

    refresh_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often a server polls the store for changed routes, versions, "
        "runner specs and keys when nothing pushes them: on SQLite, and on PostgreSQL while "
        "its listening connection is down.",
    )
    listen_for_changes: bool = Field(
        default=True,
        description="On PostgreSQL, hold one LISTEN connection per server process, so that "
        "route, version, runner, key and alert-rule changes reach it at once (NOTIFY on "
        "commit). Off: poll every refresh_interval_s, as on SQLite.",
    )
    listen_poll_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="While a server listens for pushed changes, it still polls this often, "
        "as a safety net (never more often than refresh_interval_s).",
    )
    redis_url: str = Field(
        default="",
        description="Redis shared by every replica (redis://host:6379/0; rediss:// for TLS): "
        "a key's rate limit is then one token bucket across all of them, kept in Redis. "
        "Empty: each machine counts alone (see rate_limit_replicas).",
    )
    redis_key_prefix: str = Field(
        default="pointsman:",
        description="Prefix of every Redis key pointsman writes (buckets expire on their "
        "own); give each project sharing one Redis its own.",
    )
    rate_limit_replicas: int = Field(
        default=1,
        ge=1,
        description="Replicas behind a load balancer, each with its own rate-limit counters: "
        "each allows this share (rate / replicas) of a key's rate. Workers of one server "
        "share their counters and count as one. Not used with redis_url (one shared bucket), "
        "except by redis_down_policy `local`.",
    )
    redis_down_policy: Literal["local", "open", "closed"] = Field(
        default="local",
        description="While Redis cannot be reached: `local` counts in this machine's own "
        "bucket (rate / rate_limit_replicas) and warns once per outage, `open` admits every "
        "request of a valid key, `closed` refuses them with 503.",
    )
    heartbeat_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often each server worker writes its heartbeat to the store (with "
        "its CPU, memory and event-loop lag, read by the alert metrics).",
    )
    replica_name: str = Field(
        default="",
        max_length=256,
        description="This server's name among the replicas (in replica_down alerts). "
        "Empty: host name and port, e.g. `web-1:8080`.",
    )
    replica_down_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A replica silent this long (no heartbeat, and not stopped cleanly) is "
        "down: any replica still alive fires `replica_down` to replica_down_notify.",
    )
    replica_down_notify: list[str] = Field(
        default_factory=list,
        description="Channels of the built-in `replica_down` rule (as an alert's `notify`, "
        'e.g. `["slack=https://…"]`). Empty: no replica_down rule.',
    )
    remote_runners: dict[str, str] = Field(
        default_factory=dict,
        description="Versions whose runners run elsewhere (`pointsman runner serve`, one "
        "Deployment per version on Kubernetes): `MODEL:VERSION`, `MODEL` or `*` → "
        "comma-separated host:port, `{model}` and `{version}` filled in, e.g. "
        '`{"*": "pointsman-runner-{model}-{version}:7070"}`. The server calls them over TCP '
        "instead of starting runners; a name resolving to several addresses (a headless "
        "Service) is one runner each. Empty: every runner runs beside the server.",
    )
    runner_secret: str = Field(
        default="",
        repr=False,
        description="Shared secret of runners over TCP: each connection proves it with an "
        "HMAC challenge both ways (never sent in clear). Needed by `pointsman runner serve` "
        "and by remote_runners; at least 16 characters.",
    )


class StorageSettings(ReplicaSettings):
    """Where a project keeps its store and artifacts: the first settings of `Settings`."""

    model_config = SettingsConfigDict(env_prefix="POINTSMAN_", extra="forbid", defer_build=True)

    project: Path = Field(
        default=Path("."),
        description="Project folder: holds pointsman.toml, the SQLite database and artifacts.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store. Empty: SQLite file pointsman.db in the "
        "project. PostgreSQL: postgresql+psycopg://user@host:5432/db.",
    )
    artifact_dir: str = Field(
        default="artifacts",
        description="Folder of stored model artifacts, relative to the project folder (with "
        "artifact_store on S3: the local cache that versions are downloaded into).",
    )
    artifact_store: str = Field(
        default="",
        description="Where artifacts are stored for every server: empty, the artifact_dir "
        "folder; `s3://BUCKET/PREFIX`, an S3-compatible bucket (needs pointsman[s3]; endpoint, "
        "region and credentials from the usual AWS settings: AWS_ENDPOINT_URL, AWS_REGION, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles or roles), with artifact_dir as "
        "the local cache of downloaded versions. See docs/artifacts.md.",
    )
    max_upload_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=1024,
        description="Largest upload `pointsman register --url` may send (the artifact and "
        "its training data, as one tar archive), and the most a console upload's files may "
        "add up to; larger uploads get 413.",
    )

    def project_path(self) -> Path:
        return self.project.expanduser().resolve()

    def resolved_database_url(self) -> str:
        """The store URL, defaulting to the project's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.project_path() / 'pointsman.db'}"

    def artifact_path(self) -> Path:
        path = Path(self.artifact_dir).expanduser()
        return path if path.is_absolute() else self.project_path() / path


class AlertSettings(StorageSettings):
    """Alert rules, the evaluator, the watchdog and the e-mail channel: a part of `Settings`."""

    model_config = SettingsConfigDict(env_prefix="POINTSMAN_", extra="forbid", defer_build=True)

    alerts: list[AlertRuleConfig] = Field(
        default_factory=list,
        description="Alert rules kept in the settings file, one `[[alerts]]` table each with "
        "`name`, `model` (default every model), `when` (e.g. `error_rate > 0.02`), `window`, "
        '`for`, `severity`, `notify` (e.g. `["slack=https://…", "email=ops@example.com"]`), '
        "`cooldown`, `description`. Read-only from the CLI and API; see docs/alerts.md.",
    )
    alerts_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often the alert evaluator (one process of all servers, by lease) "
        "reads the metrics and checks every rule.",
    )
    alerts_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="How long the alert evaluator's lease lasts unrenewed: when the process "
        "holding it dies, another takes over within this (at least 3 alerts_interval_s).",
    )
    watchdog_notify: list[str] = Field(
        default_factory=list,
        description="Channels of the built-in `Watchdog` rule: an alert always firing, sent "
        "again every watchdog_every_s, so that its absence is the page (Alertmanager's "
        "convention; point it at a dead man's switch). Empty: no watchdog.",
    )
    watchdog_every_s: float = Field(
        default=300.0,
        ge=1,
        description="How often the watchdog notice is sent again (seconds).",
    )
    alerts_history_days: float = Field(
        default=90.0,
        ge=0,
        description="Keep sent alerts and their delivery attempts this many days (0: forever).",
    )
    alerts_external_url: str = Field(
        default="",
        description="Base URL people open pointsman at (e.g. https://pointsman.example); "
        "alerts link to it. Empty: no link.",
    )
    smtp_host: str = Field(
        default="", description="SMTP server that e-mail alerts go through. Empty: no e-mail."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field(
        default="pointsman@localhost", description="Sender address of e-mail alerts."
    )
    smtp_user: str = Field(default="", description="SMTP login. Empty: no login.")
    smtp_password: str = Field(default="", description="SMTP password (with smtp_user).")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection with STARTTLS before login."
    )


class Settings(AlertSettings):
    """Everything an operator can set. Every field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="POINTSMAN_", extra="forbid", defer_build=False)

    default_model: str = Field(
        default="",
        description="Model answering MLflow's bare /invocations. Empty: the only deployed model.",
    )
    host: str = Field(default="127.0.0.1", description="Address `pointsman serve` binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port `pointsman serve` binds.")
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="HTTP worker processes for serve; 0: one per CPU the server may use.",
    )
    http_server: Literal["uvicorn", "granian"] = Field(
        default="uvicorn",
        description="The HTTP server `pointsman serve` runs the app on: uvicorn (uvloop + "
        "httptools), or granian (a Rust HTTP server; `pip install 'pointsman[granian]'`). "
        "With granian the runners are always supervised by the serve process, whatever the "
        "worker count. Set to act as uvicorn (TLS 1.2 and 1.3, keep-alive closed after 5 s "
        "idle, workers die with serve), except: 5 s to send a request's headers, its own log "
        "lines from the `_granian` logger. bench/front_cpu.py and bench/serve_vs_bentoml.py "
        "measure both.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger bodies get 413.",
    )
    shadow_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Shadow copies waiting to run; past this, copies are dropped and counted "
        "so that shadows never slow the primary.",
    )
    log_predictions: bool = Field(
        default=True,
        description="Keep a prediction record of every request (inputs after redaction, "
        "outputs, latency, findings, errors) in the store; see docs/prediction-log.md.",
    )
    log_spool_dir: str = Field(
        default="spool",
        description="Folder, relative to the project folder, where each worker process "
        "appends its prediction records before the response leaves (one subfolder per "
        "worker); the shipper moves them into the store.",
    )
    log_ship_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often each worker seals its spooled prediction records for shipping, "
        "and how often the server's shipping (one per server, off the HTTP workers) moves the "
        "sealed ones into the store.",
    )
    log_segment_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="A spool segment file is closed and a new one opened past this size.",
    )
    log_fsync: bool = Field(
        default=False,
        description="fsync every spooled record before answering. Off, a record survives a "
        "killed process (the kernel holds it) but not a power loss; on, it survives both at "
        "the cost of a disk flush per request.",
    )
    log_spool_budget_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=4096,
        description="Disk the spool may use while the store is unreachable; a warning is "
        "logged past 80 %, and past 100 % log_spool_full_policy applies.",
    )
    log_spool_full_policy: Literal["drop", "refuse"] = Field(
        default="drop",
        description="Past the spool budget: `drop` keeps serving and counts the records "
        "not kept; `refuse` answers 503 so that no request is served unlogged.",
    )
    log_redact: dict[str, Redaction] = Field(
        default_factory=dict,
        description="Per model, input fields kept out of the prediction log before anything "
        "is written (spool included): `drop` removes them, `hash` replaces values with a "
        "salted sha256, `truncate` keeps the first N characters. In pointsman.toml: "
        '`[log_redact.churn]` then `drop = ["email"]`, `hash = ["customer_id"]`, '
        "`truncate = {postcode = 3}`.",
    )
    log_hash_salt: str = Field(
        default="",
        description="Salt of the sha256 that `log_redact` hashes fields with. Set a long "
        "random secret; empty, hashed values can be matched against guessed inputs.",
    )
    log_retention_days: float = Field(
        default=0,
        ge=0,
        description="Delete prediction records older than this many days, once a day, from "
        "a running server. 0 keeps them until `pointsman log prune`.",
    )
    auth: bool = Field(
        default=True,
        description="Require an API key (Authorization: Bearer pk_...) on every endpoint but "
        "health and docs. Off only for local experiments: the server warns loudly at start.",
    )
    metrics_open: bool = Field(
        default=False,
        description="Serve /metrics without an API key (a scraper inside a private network). "
        "Otherwise it needs a key with read:* (or admin) like any other read.",
    )
    metrics_max_clients: int = Field(
        default=100,
        ge=1,
        description="Most distinct clients (API key names) one server process labels in "
        "pointsman_client_requests_total; requests of clients past them count as `other`.",
    )
    ui_session_hours: float = Field(
        default=12.0,
        gt=0,
        description="How long a console session (/ui, signed in with an API key) lasts before "
        "signing in again; revoking the key ends its sessions at once.",
    )
    max_rows_per_request: int = Field(
        default=100_000,
        ge=1,
        description="Most rows one predict request may carry; more get 422.",
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest a predict request may take, reading and model included; past "
        "it the caller gets 504.",
    )
    gate: GateConfig = Field(
        default_factory=GateConfig,
        description="Thresholds of `pointsman gate` in a `[gate]` table: `max_flip_rate` "
        "(label flips against the version in force, default 0.02), `max_mean_abs_diff` "
        "(regressors: of predictions; classifiers: of probabilities), `max_p99_ratio` (p99 "
        "latency against the version in force, default 1.2, plus `bench_slack_ms`, default "
        "1), `max_refused_rate` (test rows "
        "validation would refuse, default 0), `bench_rows`, `bench_concurrency`, "
        "`bench_requests` (per cell).",
    )
    log_sink_url: str = Field(
        default="",
        description="Also send every answered request to this URL as a CloudEvents pair "
        "(KServe's request and response event types, binary mode, one ce-id), for an "
        "external pipeline. Empty: no sink. A sink that is down never affects serving.",
    )
    log_sink_source: str = Field(
        default="/pointsman", description="The `ce-source` of the events the sink sends."
    )
    log_sink_queue_size: int = Field(
        default=10000,
        ge=1,
        description="Records waiting for the sink; past this they are dropped and counted.",
    )
    log_sink_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of an event the sink could not deliver (exponential backoff "
        "from 0.2 s) before it is dropped and counted.",
    )
    drift_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often the drift monitor compares each routed version's recent inputs "
        "with its reference profile (one server process runs it, under a lease).",
    )
    drift_window_s: float = Field(
        default=3600.0,
        gt=0,
        description="The window of logged requests each drift run looks at, in seconds.",
    )
    quality_window_s: float = Field(
        default=86400.0,
        gt=0,
        description="GET /metrics: the quality gauges score the predictions of this many "
        "seconds back that have outcomes (recomputed at most once a minute per process).",
    )
    drift_history_days: float = Field(
        default=90.0,
        ge=0,
        description="Keep drift results this many days (0: forever); pruned by the monitor.",
    )
    drift_warn_psi: float = Field(
        default=0.1, gt=0, description="PSI from which a feature's drift is graded warn."
    )
    drift_alert_psi: float = Field(
        default=0.25, gt=0, description="PSI from which a feature's drift is graded alert."
    )
    drift_min_rows: int = Field(
        default=100,
        ge=1,
        description="Rows a window needs before drift is graded; fewer is reported too small.",
    )
    drift_max_rows: int = Field(
        default=100_000,
        ge=1,
        description="The newest rows of a window that a drift run reads at most.",
    )
    tls_cert: str = Field(
        default="",
        description="PEM certificate (chain) file: with tls_key, `pointsman serve` answers "
        "HTTPS only; plain HTTP to its port fails the TLS handshake.",
    )
    tls_key: str = Field(default="", description="PEM private key file of tls_cert.")
    tls_redirect_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="With TLS on: also listen for plain HTTP on this port and redirect every "
        "request (308) to HTTPS. 0: no plain HTTP listener at all.",
    )
    runners: dict[str, RunnerConfig] = Field(
        default_factory=dict,
        description="Placement and limits of runners per model, as `[runners.MODEL]` tables "
        '(`[runners."MODEL:VERSION"]` for one version, `[runners."*"]` for every model): '
        "replicas, cpu, memory, disk, timeout, queue, max_batch_rows, max_wait_ms, runtime. See "
        "docs/runners.md; `pointsman runners` overrides them in the store.",
    )
    runner_cgroup: str = Field(
        default="",
        description="A cgroup v2 folder this server may write (delegated to it, with the memory "
        "and cpu controllers): runners get child cgroups there with memory.max and cpu.max. "
        "Empty: resource limits (RLIMIT_DATA, RLIMIT_FSIZE, CPU affinity and nice).",
    )
    runner_dir: str = Field(
        default="",
        description="Folder of the runners' sockets and state, set by `pointsman serve` for "
        "its HTTP workers. Empty: the app starts and supervises runners of its own.",
    )
    runner_drain_s: float = Field(
        default=2.0,
        ge=0,
        description="How long the runners of a version no longer routed keep taking calls "
        "(while every worker picks up the new route) before they finish what they hold and "
        "stop.",
    )
    startup_wait_s: float = Field(
        default=0.0,
        ge=0,
        description="How long a starting server waits for its routed versions to be warm "
        "before it serves anyway (versions still loading answer 503 until warm). 0: serve at "
        "once; a slow version never holds up the start or the others.",
    )
    server_log_level: str = Field(
        default="info",
        description="Log level of `pointsman serve` (uvicorn's): critical, error, warning, info, "
        "debug or trace.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="The server log's format: `text` for a terminal, or `json`, one object "
        "per line (time, level, logger, message, request_id, model, version) for a log "
        "pipeline. API keys and credentials are masked in either; no line carries inputs.",
    )
    access_log: bool = Field(
        default=False,
        description="One line per answered request in the server log (method, path, status, "
        "duration_ms, client, request_id, model, version), under the logger pointsman.access.",
    )
    log_level: str | None = Field(
        default=None,
        description="Deprecated old name of server_log_level: still read (when "
        "server_log_level is not set), with a warning.",
    )

    @model_validator(mode="after")
    def _deprecated_names(self) -> Settings:
        # Renamed: log_level read like one of the prediction-log options (log_*).
        if self.log_level is not None:
            warnings.warn(
                "The setting log_level (POINTSMAN_LOG_LEVEL) is now server_log_level "
                "(POINTSMAN_SERVER_LOG_LEVEL); the old name will stop working.",
                FutureWarning,
                stacklevel=1,  # pydantic's frames are all above: point at this line
            )
            if "server_log_level" not in self.model_fields_set:
                self.server_log_level = self.log_level
        return self


def load_settings(project: Path | None = None, **overrides: Any) -> Settings:
    """Settings for a project: its pointsman.toml, then environment, then `overrides`."""
    try:
        base = Settings() if project is None else Settings(project=project)
        folder = base.project_path()
        values: dict[str, Any] = {}
        file = folder / SETTINGS_FILE
        if file.exists():
            try:
                values = tomllib.loads(file.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        env_set = base.model_fields_set
        values = {k: v for k, v in values.items() if k not in env_set}
        merged = {**values, **{k: getattr(base, k) for k in env_set}}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        merged["project"] = folder
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"Invalid settings: {problems}.") from exc


def write_settings_file(folder: Path, values: dict[str, Any]) -> Path:
    """Write a commented pointsman.toml holding `values`."""
    lines = ["# pointsman project settings; every option is in docs/settings.md", ""]
    for key, value in values.items():
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key} = "{escaped}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value}")
    path = folder / SETTINGS_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
