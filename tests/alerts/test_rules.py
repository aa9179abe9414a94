"""Parsing rules, and the state machine's table: pending, firing, repeat, resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pointsman.alerts.evaluator import State, step
from pointsman.alerts.rules import (
    Channel,
    Rule,
    RuleBook,
    build_rule,
    format_duration,
    parse_duration,
    redact,
)
from pointsman.errors import InvalidAlertRule
from pointsman.project import Project
from pointsman.settings import AlertRuleConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1m", 60), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("15", 15), ("0", 0)],
)
def test_durations_read_and_print_back(text: str, seconds: float) -> None:
    assert parse_duration(text, "for", "r") == seconds
    if seconds:
        assert parse_duration(format_duration(seconds), "for", "r") == seconds


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:9000/hook?token=x", "http://127.0.0.1:9000/…"),
        ("slack=https://hooks.slack.com/services/T0/B0/S", "slack=https://hooks.slack.com/…"),
        ("ops@example.com", "ops@example.com"),
    ],
)
def test_urls_are_redacted_to_scheme_and_host(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        ("webhook=http://[", "not an http"),  # urlsplit raises on the unclosed [
        ("webhook=http://x:99999/h", "not an http"),  # a port past 65535
        ("webhook=http://x:port/h", "not an http"),
    ],
)
def test_channels_whose_url_cannot_be_read_are_refused_naming_it(channel: str, why: str) -> None:
    with pytest.raises(InvalidAlertRule, match=why):
        build_rule("r", when="error_rate > 0.1", notify=[channel])


@pytest.mark.parametrize("threshold", ["nan", "inf", "1_000", "0x10"])
def test_thresholds_are_decimal_numbers(threshold: str) -> None:
    with pytest.raises(InvalidAlertRule, match="not a decimal number"):
        build_rule("r", when=f"error_rate > {threshold}")


def test_percent_thresholds_and_channel_labels() -> None:
    rule = build_rule(
        "flags",
        when="validation_flag_rate >= 5%",
        notify=["slack=https://hooks.slack.com/services/T/B/S"],
    )
    assert rule.condition.threshold == 0.05 and rule.condition.op == ">="
    assert rule.channels == (Channel("slack", "https://hooks.slack.com/services/T/B/S"),)
    assert rule.to_json()["notify"] == ["slack=https://hooks.slack.com/…"]
    assert rule.spec()["notify"] == ["slack=https://hooks.slack.com/services/T/B/S"]


def test_settings_file_rules_must_have_unique_names(project: Project) -> None:
    config = AlertRuleConfig(name="a", when="error_rate > 0.1")
    with pytest.raises(InvalidAlertRule, match="names two"):
        RuleBook(project.engine, [config, config])


RULE = build_rule("r", when="error_rate > 0.1", for_="60s", cooldown="10m")
NO_REPEAT = build_rule("r", when="error_rate > 0.1", cooldown="0")
PENDING = State("pending", 0.2, at(0))
FIRING = State("firing", 0.2, at(0), at(60), at(60))


@pytest.mark.parametrize(
    ("rule", "state", "value", "now", "status", "event"),
    [
        (RULE, State(), 0.05, at(0), "ok", None),
        (RULE, State(), None, at(0), "ok", None),  # no requests: nothing to alert on
        (RULE, State(), 0.2, at(0), "pending", None),
        (RULE, PENDING, 0.2, at(59), "pending", None),
        (RULE, PENDING, 0.2, at(60), "firing", "firing"),
        (RULE, PENDING, 0.05, at(30), "ok", None),  # cleared before `for`: silent
        (RULE, FIRING, 0.3, at(60 + 599), "firing", None),  # inside the cooldown
        (RULE, FIRING, 0.3, at(60 + 600), "firing", "repeat"),
        (RULE, FIRING, 0.05, at(120), "ok", "resolved"),
        (RULE, FIRING, None, at(120), "ok", "resolved"),  # traffic stopped: resolved
        (NO_REPEAT, State(), 0.2, at(0), "firing", "firing"),  # for 0: at once
        (NO_REPEAT, FIRING, 0.2, at(10**6), "firing", None),  # cooldown 0: never repeats
    ],
)
def test_state_machine(
    rule: Rule,
    state: State,
    value: float | None,
    now: datetime,
    status: str,
    event: str | None,
) -> None:
    new, sent = step(rule, state, value, now)
    assert (new.status, sent) == (status, event)
    if sent == "repeat":
        assert new.last_sent_at == now and new.firing_since == FIRING.firing_since
