"""Alerts: rules over metrics, evaluated by one process, sent to webhooks, Slack and e-mail."""

from pointsman.alerts.dispatch import Dispatcher
from pointsman.alerts.evaluator import Evaluator, read_states
from pointsman.alerts.events import record_event
from pointsman.alerts.history import Notice, read_history
from pointsman.alerts.metrics import METRICS, metric
from pointsman.alerts.rules import Rule, RuleBook, build_rule

__all__ = [
    "METRICS",
    "Dispatcher",
    "Evaluator",
    "Notice",
    "Rule",
    "RuleBook",
    "build_rule",
    "metric",
    "read_history",
    "read_states",
    "record_event",
]
