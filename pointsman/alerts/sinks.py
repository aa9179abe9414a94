"""Alert sinks: send one notice to one channel and say whether (and when) to try again.

The policy of docs/alerts.md (Channels): 2xx is done; 429 waits Retry-After; 5xx, timeouts and
refused connections are retried with backoff; any other 4xx is not retried and its answer
is kept in the history. Webhook URLs never appear in what is logged or stored.
"""

from __future__ import annotations

import logging
import smtplib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from pointsman.alerts.history import Notice
from pointsman.alerts.payloads import alertmanager_payload, email_message, slack_payload
from pointsman.alerts.rules import Channel
from pointsman.settings import Settings

TIMEOUT_S = 10.0
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class Outcome:
    """What a channel answered: sent, or failed with or without a retry (and how soon)."""

    is_sent: bool
    detail: str
    should_retry: bool = False
    retry_after_s: float | None = None  # from Retry-After; None: the sender's backoff


class AlertSink(Protocol):
    """One channel of notifications. `send` blocks (it runs in the channel's own thread)
    and never raises: every failure is an Outcome, so that the sender can decide to retry."""

    channel: Channel

    def send(self, notice: Notice) -> Outcome: ...


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            from_date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (from_date - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def judge_response(response: httpx.Response) -> Outcome:
    """Sent, retry (429, 5xx) or give up (other 4xx), with the start of the answer."""
    status = response.status_code
    text = response.text.strip().replace("\n", " ")[:200]
    detail = f"HTTP {status}" + (f": {text}" if text else "")
    if 200 <= status < 300:
        return Outcome(True, detail)
    if status == 429:
        return Outcome(False, detail, True, retry_after(response.headers.get("retry-after")))
    return Outcome(False, detail, should_retry=status >= 500)


class SecretUrls(logging.Filter):
    """Rewrites httpx's own request log lines (INFO) so that channel URLs show as redacted."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self.labels:
            record.args = tuple(
                self.labels.get(str(a), a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


SECRET_URLS = SecretUrls()
logging.getLogger("httpx").addFilter(SECRET_URLS)


class HttpSink(ABC):
    """POSTs JSON to a URL; subclasses build the body."""

    def __init__(self, channel: Channel, client: httpx.Client, external_url: str = "") -> None:
        SECRET_URLS.labels[str(httpx.URL(channel.target))] = channel.label
        self.channel = channel
        self.client = client
        self.external_url = external_url

    @abstractmethod
    def body(self, notice: Notice) -> dict[str, object]:
        """The JSON this channel's receiver takes."""

    def send(self, notice: Notice) -> Outcome:
        try:
            response = self.client.post(self.channel.target, json=self.body(notice))
        except httpx.TimeoutException:
            return Outcome(False, f"no answer within {TIMEOUT_S:g} s", True)
        except httpx.HTTPError as exc:
            message = str(exc).replace(self.channel.target, self.channel.label)
            return Outcome(False, f"{type(exc).__name__}: {message}"[:300], True)
        return judge_response(response)


class WebhookSink(HttpSink):
    """A generic webhook receiving Alertmanager's v4 payload."""

    def body(self, notice: Notice) -> dict[str, object]:
        return alertmanager_payload(notice, self.external_url)


class SlackSink(HttpSink):
    """A Slack incoming webhook (the URL is the credential)."""

    def body(self, notice: Notice) -> dict[str, object]:
        return slack_payload(notice, self.external_url)


class EmailSink:
    """An e-mail over SMTP (STARTTLS and login when configured)."""

    def __init__(self, channel: Channel, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings

    def send(self, notice: Notice) -> Outcome:
        s = self.settings
        if not s.smtp_host:
            return Outcome(
                False, "smtp_host is not set: set it (and smtp_port, smtp_from) in pointsman.toml"
            )
        message = email_message(notice, s.smtp_from, self.channel.target, s.alerts_external_url)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=TIMEOUT_S) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            # 4xx is temporary by SMTP's own rules; 5xx will not get better by retrying.
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return Outcome(False, f"SMTP {exc.smtp_code}: {text}"[:300], exc.smtp_code < 500)
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, f"recipient refused: {exc.recipients}"[:300])
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], True)
        return Outcome(True, f"accepted by {s.smtp_host}:{s.smtp_port}")


def build_sink(channel: Channel, settings: Settings, client: httpx.Client) -> AlertSink:
    """The sink for `channel`."""
    if channel.kind == "webhook":
        return WebhookSink(channel, client, settings.alerts_external_url)
    if channel.kind == "slack":
        return SlackSink(channel, client, settings.alerts_external_url)
    return EmailSink(channel, settings)
