"""Alert rules: a condition on a metric over a window, a severity, channels and a cooldown.

Rules come from two places: `[[alerts]]` in pointsman.toml (read-only, source "file") and
the `alert_rules` table, written by `pointsman alerts add` and the admin API (source
"store"). A stored rule may not take the name of a file rule.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pointsman.alerts.metrics import get_metric
from pointsman.errors import AlertRuleConflict, AlertRuleNotFound, InvalidAlertRule
from pointsman.settings import AlertRuleConfig
from pointsman.store.audit import write_audit
from pointsman.store.changes import notify_change
from pointsman.store.tables import alert_rules, alert_states

SEVERITIES = ("info", "warn", "critical")
CHANNEL_KINDS = ("webhook", "slack", "email")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
RESERVED = ("history", "metrics")  # paths under /v1/admin/alerts
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")
# The forms the admin API takes (its schema shows them): durations of up to seven digits
# (a longer one overflows a timedelta), a window of at least 1 s, a decimal threshold.
API_DURATION = r"^\s*\d{1,7}(\.\d+)?\s*(ms|s|m|h|d|w)?\s*$"
API_WINDOW = r"^\s*(0*[1-9]\d{0,6}(\.\d+)?\s*(s|m|h|d|w)?|0*[1-9]\d{3,6}(\.\d+)?\s*ms)\s*$"
API_CHANNEL = (
    r"^\s*((webhook|slack)\s*=\s*https?://[^/?#\s\[\]][^/?#\[\]]*([/?#].*)?"
    r"|email\s*=\s*[^ ]*@[^ ]*)\s*$"
)
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?"
_THRESHOLD = re.compile(_NUMBER)


def condition_pattern(metrics: Iterable[str]) -> str:
    """`METRIC OP NUMBER` with METRIC one of `metrics`, as a regular expression."""
    names = "|".join(sorted(metrics, key=lambda m: (-len(m), m)))
    return rf"^\s*({names})\s*(>=|<=|==|!=|>|<)\s*{_NUMBER}\s*$"


def parse_duration(text: str, what: str, rule: str) -> float:
    """`90s`, `1m`, `30m`, `2h`, `1d` (a bare number is seconds) → seconds."""
    found = DURATION.match(str(text))
    if not found:
        raise InvalidAlertRule(
            rule, f"{what} {text!r} is not a duration; write e.g. 30s, 5m, 2h, 1d"
        )
    return float(found.group(1)) * UNITS_S[found.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest exact reading: 300 → 5m, 90 → 90s, 7200 → 2h."""
    for unit in ("w", "d", "h", "m", "s"):
        size = UNITS_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Channel:
    """Where a notification goes: a generic webhook, a Slack incoming webhook, an address."""

    kind: str  # webhook | slack | email
    target: str

    @classmethod
    def parse(cls, text: str, rule: str) -> Channel:
        """`webhook=http://…`, `slack=https://hooks…`, `email=ops@example.com`."""
        kind, sep, target = text.partition("=")
        kind, target = kind.strip().lower(), target.strip()
        if not sep or kind not in CHANNEL_KINDS or not target:
            raise InvalidAlertRule(
                rule,
                f"channel {redact(text)!r} is not KIND=TARGET with KIND one of "
                f"{', '.join(CHANNEL_KINDS)} (e.g. email=ops@example.com)",
            )
        if kind in ("webhook", "slack"):
            try:
                parts = urlsplit(target)
                parts.port  # noqa: B018 - raises on a port that is no number 0-65535
            except ValueError:  # that, or an unclosed [ of an IPv6 host
                raise InvalidAlertRule(
                    rule, f"{kind} URL {redact(target)!r} is not an http(s) URL"
                ) from None
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidAlertRule(rule, f"{kind} URL {redact(target)!r} is not an http(s) URL")
        elif "@" not in target or " " in target:
            raise InvalidAlertRule(rule, f"e-mail address {target!r} is not an address")
        return cls(kind, target)

    @property
    def label(self) -> str:
        """How logs, the history and listings show it: a URL without its secret path."""
        return f"{self.kind}={redact(self.target) if self.kind != 'email' else self.target}"

    def to_text(self) -> str:
        return f"{self.kind}={self.target}"


def redact(text: str) -> str:
    """A URL cut to scheme and host: Slack webhook URLs (and many others) are credentials."""
    kind, sep, rest = text.partition("=")
    if sep and kind.strip().lower() in CHANNEL_KINDS:
        return f"{kind}={redact(rest)}"
    try:
        parts = urlsplit(text)
        if parts.scheme and parts.netloc:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            tail = "/…" if parts.path.strip("/") or parts.query else ""
            return f"{parts.scheme}://{host}{port}{tail}"
    except ValueError:  # an unclosed [ of an IPv6 host, a port that is no number
        return f"{text.partition(':')[0]}:…"
    return text


@dataclass(frozen=True)
class Condition:
    """`metric OP threshold`, e.g. `error_rate > 0.02`."""

    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str, rule: str, check_metric: bool = True) -> Condition:
        found = CONDITION.match(text)
        if not found:
            raise InvalidAlertRule(
                rule, f"condition {text!r} is not METRIC OP NUMBER (e.g. 'error_rate > 0.02')"
            )
        metric, op, number = found.groups()
        if check_metric:
            get_metric(metric, rule)  # names the known metrics when unknown
        if not _THRESHOLD.fullmatch(number):  # not "nan", "inf" or "1_000" either
            raise InvalidAlertRule(rule, f"threshold {number!r} is not a decimal number")
        threshold = float(number.rstrip("%")) / (100 if number.endswith("%") else 1)
        return cls(metric, op, threshold)

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Rule:
    """One alert rule; `model` "*" means every model, each alerting on its own."""

    name: str
    model: str
    condition: Condition
    window_s: float
    for_s: float
    severity: str
    channels: tuple[Channel, ...]
    cooldown_s: float  # 0: never repeat while firing
    description: str = ""
    source: str = "store"  # store | file
    created_by: str = ""
    created_at: datetime | None = field(default=None, compare=False)

    def spec(self) -> dict[str, Any]:
        """What the store keeps (channels in full: the sender needs the URLs)."""
        return {
            "model": self.model,
            "when": self.condition.text,
            "window": format_duration(self.window_s),
            "for": format_duration(self.for_s),
            "severity": self.severity,
            "notify": [c.to_text() for c in self.channels],
            "cooldown": format_duration(self.cooldown_s),
            "description": self.description,
        }

    def to_json(self) -> dict[str, Any]:
        """For people and scripts: channels redacted."""
        spec = self.spec()
        spec["notify"] = [c.label for c in self.channels]
        return {
            "name": self.name,
            **spec,
            "source": self.source,
            "created_by": self.created_by or None,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def build_rule(
    name: str,
    *,
    when: str,
    model: str = "*",
    window: str = "5m",
    for_: str = "0s",
    severity: str = "warn",
    notify: Iterable[str] = (),
    cooldown: str = "1h",
    description: str = "",
    source: str = "store",
    created_by: str = "",
    created_at: datetime | None = None,
    check_metric: bool = True,
) -> Rule:
    """A checked rule, or InvalidAlertRule naming what is wrong and what is allowed."""
    if not NAME.match(name):
        raise InvalidAlertRule(
            name, "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name in RESERVED:
        raise InvalidAlertRule(name, f"{name!r} is reserved (an admin API path); pick another name")
    if severity not in SEVERITIES:
        raise InvalidAlertRule(name, f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    window_s = parse_duration(window, "window", name)
    if window_s < 1:
        raise InvalidAlertRule(name, f"window {window!r} is shorter than 1s")
    condition = Condition.parse(when, name, check_metric)
    model = model.strip() or "*"
    if check_metric and model != "*" and not get_metric(condition.metric, name).per_model:
        scope = get_metric(condition.metric, name).scope
        where = "each replica" if scope == "replica" else "the whole server"
        raise InvalidAlertRule(
            name, f"{condition.metric} is measured for {where}, not per model: "
            "leave out the model (--model)",
        )  # fmt: skip
    return Rule(
        name=name,
        model=model,
        condition=condition,
        window_s=window_s,
        for_s=parse_duration(for_, "for", name),
        severity=severity,
        channels=tuple(Channel.parse(c, name) for c in notify),
        cooldown_s=parse_duration(cooldown, "cooldown", name),
        description=description,
        source=source,
        created_by=created_by,
        created_at=created_at,
    )


def rule_from_config(config: AlertRuleConfig) -> Rule:
    """A `[[alerts]]` table of the settings file as a rule."""
    return build_rule(
        config.name,
        when=config.when,
        model=config.model,
        window=config.window,
        for_=config.for_,
        severity=config.severity,
        notify=config.notify,
        cooldown=config.cooldown,
        description=config.description,
        source="file",
        created_by="pointsman.toml",
    )


class RuleBook:
    """The rules in force: the settings file's, then the store's."""

    def __init__(self, engine: Engine, file_rules: Iterable[AlertRuleConfig] = ()) -> None:
        self.engine = engine
        self.file_rules = [rule_from_config(c) for c in file_rules]
        names = [r.name for r in self.file_rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidAlertRule(twice[0], "the settings file names two [[alerts]] so")

    def list_rules(self) -> list[Rule]:
        """Every rule: file rules first, then stored ones by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(alert_rules.select().order_by(alert_rules.c.name)).all()
        taken = {r.name for r in self.file_rules}
        stored = [self._from_row(row) for row in rows if row.name not in taken]
        return [*self.file_rules, *stored]

    def get(self, name: str) -> Rule:
        rules = self.list_rules()
        for rule in rules:
            if rule.name == name:
                return rule
        raise AlertRuleNotFound(name, [r.name for r in rules])

    def add(self, rule: Rule, user: str) -> Rule:
        """Store `rule`; AlertRuleConflict if the name is taken."""
        if any(r.name == rule.name for r in self.file_rules):
            raise AlertRuleConflict(
                f"Alert rule {rule.name!r} is defined in pointsman.toml; edit it there, or "
                "give this rule another name."
            )
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    alert_rules.insert().values(
                        name=rule.name, spec=rule.spec(), created_at=now, created_by=user
                    )
                )
                # redacted: the audit log never holds a webhook URL's secret part
                write_audit(conn, user, "alert.add", f"alert:{rule.name}", None, rule.to_json())
                notify_change(conn, "alerts")
        except IntegrityError:
            raise AlertRuleConflict(
                f"An alert rule named {rule.name!r} exists already; remove it first with "
                f"`pointsman alerts remove {rule.name}`, or pick another name."
            ) from None
        return self.get(rule.name)

    def remove(self, name: str, user: str) -> Rule:
        """Delete a stored rule and its state (its history stays)."""
        rule = self.get(name)
        if rule.source == "file":
            raise AlertRuleConflict(
                f"Alert rule {name!r} is defined in pointsman.toml and cannot be removed from "
                "here; delete its [[alerts]] table and restart the servers."
            )
        with self.engine.begin() as conn:
            conn.execute(alert_rules.delete().where(alert_rules.c.name == name))
            conn.execute(alert_states.delete().where(alert_states.c.rule == name))
            write_audit(conn, user, "alert.remove", f"alert:{name}", rule.to_json(), None)
            notify_change(conn, "alerts")
        return rule

    @staticmethod
    def _from_row(row: sa.Row[Any]) -> Rule:
        spec = dict(row.spec)
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        return build_rule(
            row.name,
            when=spec["when"],
            model=spec.get("model", "*"),
            window=spec.get("window", "5m"),
            for_=spec.get("for", "0s"),
            severity=spec.get("severity", "warn"),
            notify=spec.get("notify", []),
            cooldown=spec.get("cooldown", "1h"),
            description=spec.get("description", ""),
            created_by=row.created_by,
            created_at=created,
            # A stored rule stays listable and removable even if its metric is gone from
            # this version of pointsman; the evaluator reports it at every tick instead.
            check_metric=False,
        )
