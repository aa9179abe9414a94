"""What each channel is sent: Alertmanager's v4 webhook body, a Slack message, an e-mail.

Shapes as docs/alerts.md describes them: the generic webhook emits Alertmanager's v4 payload (labels
alertname, model_name, severity, metric; annotations summary, description) so receivers
written for Alertmanager accept it; Slack gets `text` (always) plus Block Kit blocks.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from pointsman.alerts.history import Notice

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires
TITLES = {"firing": "FIRING", "repeat": "FIRING", "resolved": "RESOLVED", "test": "TEST"}


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def labels_of(notice: Notice) -> dict[str, str]:
    labels = {"alertname": notice.rule, "model_name": notice.model, "severity": notice.severity}
    if notice.metric:
        labels["metric"] = notice.metric
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex characters, stable for the same labels (what Alertmanager receivers key on)."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def link(external_url: str) -> str:
    return f"{external_url.rstrip('/')}/v1/admin/alerts/history" if external_url else ""


def alertmanager_payload(notice: Notice, external_url: str = "") -> dict[str, Any]:
    """Alertmanager's webhook body, version 4, with this one alert."""
    labels = labels_of(notice)
    annotations = {"summary": notice.summary, "description": notice.description}
    alert = {
        "status": notice.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(notice.started_at),
        "endsAt": rfc3339(notice.at) if notice.status == "resolved" else ZERO_TIME,
        "generatorURL": link(external_url),
        "fingerprint": fingerprint(labels),
    }
    group = {"alertname": notice.rule, "model_name": notice.model}
    return {
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
        "status": notice.status,
        "receiver": "pointsman",
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [alert],
    }


def mrkdwn(text: str) -> str:
    """Slack's escaping: &, < and > only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(notice: Notice) -> str:
    return f"[{TITLES[notice.event]}] {notice.summary}"


def slack_payload(notice: Notice, external_url: str = "") -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` for notifications, blocks for the channel."""
    title = f"{TITLES[notice.event]}: {notice.rule} ({notice.severity})"
    body = f"*model* `{mrkdwn(notice.model)}`\n{mrkdwn(notice.summary)}"
    if notice.description:
        body += f"\n_{mrkdwn(notice.description)}_"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
    ]
    context = f"since {notice.started_at:%Y-%m-%d %H:%M:%S} UTC"
    if external_url:
        context += f" · <{link(external_url)}|open in pointsman>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": mrkdwn(headline(notice)), "blocks": blocks}


def email_message(notice: Notice, sender: str, to: str, external_url: str = "") -> EmailMessage:
    """A plain-text e-mail."""
    message = EmailMessage()
    message["Subject"] = (
        f"[pointsman {TITLES[notice.event]} {notice.severity}] {notice.rule} on {notice.model}"
    )
    message["From"] = sender
    message["To"] = to
    lines = [
        headline(notice),
        "",
        f"rule:     {notice.rule}",
        f"model:    {notice.model}",
        f"severity: {notice.severity}",
        f"since:    {rfc3339(notice.started_at)}",
    ]
    if notice.status == "resolved":
        lines.append(f"resolved: {rfc3339(notice.at)}")
    if notice.description:
        lines += ["", notice.description]
    if external_url:
        lines += ["", link(external_url)]
    message.set_content("\n".join(lines) + "\n")
    return message
