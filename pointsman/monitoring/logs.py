"""The server's own log: text for a terminal, or one JSON object per line for a log pipeline.

`log_format = "json"` writes each line as {time, level, logger, message, request_id, model,
version, ...}. The request's fields come from `REQUEST`, a context variable the app sets
for each request and the endpoint fills in as it learns the model and version, so a line
logged anywhere below the endpoint carries them without being passed down.

Nothing secret reaches a line: API keys (`pk_…`), bearer and basic credentials and webhook
URLs' secrets are masked in every message and traceback, and no line carries a request's
inputs (the access log names the request, never its body).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("pointsman_request", default=None)
CONTEXT_FIELDS = ("request_id", "model", "version")
ACCESS_LOGGER = "pointsman.access"

# API keys, credentials in headers or URLs, and Slack-style webhook paths.
_SECRETS = [
    (re.compile(r"pk_[A-Za-z0-9_\-]{8,}"), "pk_***"),
    (re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 ***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1***"),
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),
    (re.compile(r"(hooks\.slack\.com/services/)[^\s'\"]+"), r"\1***"),
]
# Attributes every LogRecord has: anything else on a record is a field someone added.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured twin of the message
    "taskName",
}


def scrub(text: str) -> str:
    """`text` with every secret it may quote masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def bind(**fields: Any) -> None:
    """Add fields to the current request's log context (a no-op outside a request)."""
    context = REQUEST.get()
    if context is not None:
        context.update({k: v for k, v in fields.items() if v is not None})


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request's fields from `REQUEST`, secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        context = REQUEST.get() or {}
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            value = context.get(name) if value is None else value
            if value is not None:
                line[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in line and value is not None:
                line[name] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return orjson.dumps(line, default=str).decode()


class ScrubbingFormatter(logging.Formatter):
    """The text format, with the same secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server, uvicorn's loggers included.

    Passed to uvicorn as its `log_config`, so each worker process it starts applies it too.
    """
    level = level.upper()
    if level == "TRACE":  # uvicorn's own level below debug
        level = "DEBUG"
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"()": f"{__name__}.ScrubbingFormatter", "fmt": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    quiet = {"handlers": ["main"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "pointsman": quiet,
            "uvicorn": quiet,
            "uvicorn.error": {"level": level},
            "uvicorn.access": quiet,
            "_granian": quiet,  # `http_server = granian`: its own logger
            "granian.access": quiet,
        },
        "root": {"handlers": ["main"], "level": "WARNING"},
    }
