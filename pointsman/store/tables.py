"""The tables, as SQLAlchemy Core; migrations/ must produce exactly this schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    # What the console's catalogue shows and edits (migration 0011).
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("tags", sa.JSON, nullable=True),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("artifact", sa.String(512), nullable=False),
    sa.Column("entrypoint", sa.String(256), nullable=True),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=True),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("input_example", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    # The ONNX compile of the version and its check against the original (migration 0009).
    sa.Column("compiled", sa.JSON, nullable=True),
    sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
    sa.UniqueConstraint("model_id", "sha256", name="uq_versions_model_sha256"),
)

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("model_id", "revision", name="uq_routes_model_revision"),
)

# One row; bumped by every change servers must see (routes, versions). Servers poll it:
# a one-row read is cheap on SQLite and PostgreSQL alike, and keeps the hot path off the DB.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("counter", sa.BigInteger, nullable=False),
)

# Per worker process and route revision, what each version did in each role. Workers write
# their own cumulative rows (so a flush is idempotent); readers sum across workers.
route_stats = sa.Table(
    "route_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint(
        "model", "revision", "worker", "version", "role", name="uq_route_stats_key"
    ),
)

# Named leases: exactly one process at a time runs a singleton job (the canary controller).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# -- prediction log --------------------------------------------------------------------

# One row per request and role (primary | fallback | pinned | shadow); a shadow shares its primary's
# request id. Shipped from the workers' spools, so (request_id, role, version) makes a
# re-shipped record a no-op. Inputs are stored after redaction.
prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("route_revision", sa.Integer, nullable=True),
    sa.Column("client", sa.String(128), nullable=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("model_ms", sa.Float, nullable=True),
    sa.Column("findings", sa.JSON, nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("extra", sa.JSON, nullable=True),
    sa.Column("runtime", sa.String(16), nullable=True),  # original | compiled (0009)
    sa.UniqueConstraint("request_id", "role", "version", name="uq_prediction_log_key"),
    sa.Index("ix_prediction_log_model_time", "model", "time"),
    sa.Index("ix_prediction_log_time", "time"),
)

# Per-minute rollups of the prediction log (migration 0014), rolled up from the records
# (store/rollups.py): what the console's dashboards read instead of the raw records. `minute`
# counts minutes since 1970 (UTC); h00..h43 count records per latency bucket, fixed log buckets
# sqrt(2) apart, so any window's histogram is a sum.
LATENCY_BUCKETS = 44
prediction_rollups = sa.Table(
    "prediction_rollups",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("flagged", sa.BigInteger, nullable=False),  # records with validation findings
    sa.Column("latency_ms_sum", sa.Float, nullable=False),
    *(sa.Column(f"h{i:02d}", sa.BigInteger, nullable=False) for i in range(LATENCY_BUCKETS)),
)

# How far the rollups go (migration 0015): every record with an id up to `last_id` is counted
# in them, none above it. One row. The shipper only inserts; one process per server (the
# supervisor of `pointsman serve`) rolls up the records above the mark and moves it, and
# readers add the records above it (store/rollups.py), so figures stay exact in between.
rollup_watermark = sa.Table(
    "rollup_watermark",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False),
)

# Validation findings per minute by feature and rule (migration 0014), beside the rollups.
finding_rollups = sa.Table(
    "finding_rollups",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("feature", sa.Text, primary_key=True),
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("findings", sa.BigInteger, nullable=False),
)

# Requests and errors per minute by the client label of the key that made them, shadows left
# out (migration 0014): the console's client usage, beside the rollups.
client_rollups = sa.Table(
    "client_rollups",
    metadata,
    sa.Column("client", sa.String(128), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
)

# -- keys, rate limits and audit --------------------------------------------------------

# API keys: only the sha256 of a key is stored. A revoked key keeps its row (and its name in
# the audit log); `updated_at` changes on every write so servers notice with one cheap read.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("rate", sa.String(32), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_by", sa.String(128), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Every admin action: who, when, what, and the state before and after (never a key).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("who", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(160), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_audit_log_at", "at"),
)

# -- alerts -----------------------------------------------------------------------------

# Rules added by the CLI or the admin API (rules from pointsman.toml live in the file only).
alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

# Where each (rule, model) stands, so that a new evaluator (restart, lease handover) neither
# fires again nor forgets to resolve.
alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("rule", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("firing_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Every notification (firing, repeat, resolved, test) and what each channel answered.
alert_history = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alert_history_at", "at"),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alert_history.id"), nullable=False),
    sa.Column("channel", sa.String(256), nullable=False),  # redacted: never a Slack URL
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # sent | retrying | failed | dropped
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_alert_deliveries_alert_id", "alert_id"),
)

# Things that happened in one process that the alert evaluator must see (a version that
# failed to load); kept small: pruned past a day.
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_alert_events_at", "at"),
)

# -- drift --------------------------------------------------------------------------------

# One row per (model, version, feature, window): the drift of the logged inputs (or, for the
# feature "(predictions)", outputs) against the version's reference profile.
drift_results = sa.Table(
    "drift_results",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("feature", sa.String(256), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_s", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("psi", sa.Float, nullable=True),
    sa.Column("grade", sa.String(16), nullable=False),
    sa.Column("test", sa.String(8), nullable=False),
    sa.Column("statistic", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("top_change", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_drift_results_model_time", "model", "window_end"),
)

# One row per spool (host and folder): its bytes waiting to be shipped and its budget, as a
# worker last measured them; read by the `spool_usage` alert metric.
spool_usage = sa.Table(
    "spool_usage",
    metadata,
    sa.Column("spool", sa.String(512), primary_key=True),
    sa.Column("used_bytes", sa.BigInteger, nullable=False),
    sa.Column("budget_bytes", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# -- runners: placement and limits per model (version 0) or per version --------------------
runner_specs = sa.Table(
    "runner_specs",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # 0: every version of the model
    sa.Column("spec", sa.JSON, nullable=False),  # only the fields set here
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
)

# -- the servers watching each other -------------------------------------------------------
# One row per server worker process: its last heartbeat and what it measured of itself.
# A replica (a `pointsman serve`) is its rows; one silent past replica_down_after_s, and not
# stopped on purpose, fires `replica_down` from any replica still alive.
replica_heartbeats = sa.Table(
    "replica_heartbeats",
    metadata,
    sa.Column("replica", sa.String(256), primary_key=True),
    sa.Column("worker", sa.String(64), primary_key=True),  # the process id on its host
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),  # a clean stop
    sa.Column("cpu_ratio", sa.Float, nullable=True),  # CPU seconds per second since last beat
    sa.Column("rss_bytes", sa.BigInteger, nullable=True),
    sa.Column("loop_lag_ms", sa.Float, nullable=True),  # worst event-loop lag since last beat
)


# -- outcomes ------------------------------------------------------------------------------
# The true value of a prediction, arriving minutes or weeks later: by request id (and row of
# that request), or by a business key the route names (`outcome_key`, e.g. customer_id).
# Joined to prediction records when read, so an outcome that comes before its record is
# matched once the record is shipped. One row per key: posting it again replaces the value.
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("key_name", sa.String(128), nullable=False),  # request_id, or the business key
    sa.Column("key_value", sa.String(256), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),  # row of the request (0 for business keys)
    sa.Column("outcome", sa.JSON, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("client", sa.String(128), nullable=True),
    sa.UniqueConstraint("model", "key_name", "key_value", "row", name="uq_outcomes_key"),
    sa.Index("ix_outcomes_model_received", "model", "received_at"),
)


# -- the console -------------------------------------------------------------------------------

# A browser session: the cookie holds a random id, the store its sha256 and the key it signed
# in with (by hash), so revoking the key ends its sessions at the next request.
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# Applications that call models (first-class records holding their keys), and the keys
# requested for them from the portal: pending → approved | refused → collected (key_name set).
clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("contact", sa.String(256), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

key_requests = sa.Table(
    "key_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("client", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(128), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("key_name", sa.String(64), nullable=True),
)


# -- batch scoring jobs (migration 0010): one row per job, one per finished chunk ----------
batch_jobs = sa.Table(
    "batch_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # input, output, rejects, keep, chunk_rows, …
    sa.Column("state", sa.String(16), nullable=False),  # queued running succeeded failed
    sa.Column("rows_total", sa.BigInteger, nullable=True),  # None: not known yet
    sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_flagged", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_per_s", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("runner", sa.String(256), nullable=False, server_default=""),  # host:pid
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_batch_jobs_created", "created_at"),
)

batch_chunks = sa.Table(
    "batch_chunks",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("batch_jobs.id"), primary_key=True),
    sa.Column("chunk", sa.Integer, primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("flagged", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)
