"""The admin API for alerts under /v1/admin/alerts: rules, their state, history and tests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from pointsman.alerts import RuleBook, build_rule, read_history, read_states
from pointsman.alerts.dispatch import send_test
from pointsman.alerts.metrics import METRICS
from pointsman.alerts.rules import (
    API_CHANNEL,
    API_DURATION,
    API_WINDOW,
    NAME,
    RESERVED,
    Rule,
    condition_pattern,
)
from pointsman.alerts.watch import rule_configs
from pointsman.api.admin import ErrorOut, User, who
from pointsman.api.common import project_of
from pointsman.logstore.query import TIME_FORMS, parse_time

router = APIRouter(
    prefix="/v1/admin/alerts",
    tags=["alerts"],
    responses={
        401: {"model": ErrorOut, "description": "No valid API key"},
        403: {"model": ErrorOut, "description": "The key lacks the admin scope"},
        404: {"model": ErrorOut, "description": "Unknown alert rule"},
        409: {"model": ErrorOut, "description": "Name taken, or a read-only rule of the file"},
        422: {"model": ErrorOut, "description": "Refused rule (names the field and why)"},
    },
)


PER_MODEL = [m.name for m in METRICS.values() if m.per_model]
SERVER_WIDE = [m.name for m in METRICS.values() if not m.per_model]
# A metric measured for the whole server (or each replica) takes no model: `*` or blank.
ONE_MODEL_OR_ALL: dict[str, Any] = {
    "anyOf": [
        {"properties": {"when": {"pattern": condition_pattern(PER_MODEL)}}},
        {
            "properties": {
                "when": {"pattern": condition_pattern(SERVER_WIDE)},
                "model": {"pattern": r"^\s*\*?\s*$"},
            }
        },
    ]
}


class RuleIn(BaseModel):
    """A new alert rule, as `pointsman alerts add` takes it."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=ONE_MODEL_OR_ALL
    )

    name: str = Field(
        pattern=NAME.pattern,
        description="1-64 letters, digits, '.', '_' or '-' (not history or metrics).",
        json_schema_extra={"not": {"enum": list(RESERVED)}},
    )
    # Its pattern is in ONE_MODEL_OR_ALL: which metrics it may name depends on `model`.
    when: str = Field(
        description="METRIC OP NUMBER, e.g. `error_rate > 0.02` (GET …/alerts/metrics lists "
        "the metrics; one measured for the whole server takes no model)."
    )
    model: str = Field(
        "*", min_length=1, description="The model watched; `*`: each model on its own."
    )
    window: str = Field(
        "5m", pattern=API_WINDOW, description="Span the metric is read over (1s or more)."
    )
    for_: str = Field(
        "0s", alias="for", pattern=API_DURATION, description="How long the condition holds."
    )
    severity: Literal["info", "warn", "critical"] = Field("warn", description="How urgent.")
    notify: list[Annotated[str, Field(pattern=API_CHANNEL)]] = Field(
        default_factory=list, description="webhook=URL, slack=URL or email=ADDRESS each."
    )
    cooldown: str = Field(
        "1h", pattern=API_DURATION, description="Repeat a firing alert at most this often."
    )
    description: str = ""


def _book(request: Request) -> RuleBook:
    project = project_of(request)
    return RuleBook(project.engine, rule_configs(project.settings))


def _with_states(rules: list[Rule], request: Request) -> list[dict[str, Any]]:
    states = read_states(project_of(request).engine)
    return [
        {**r.to_json(), "states": [s for (n, _), s in sorted(states.items()) if n == r.name]}
        for r in rules
    ]


@router.get("", summary="List alert rules (file and stored) with each model's state")
def list_rules(request: Request) -> list[dict[str, Any]]:
    return _with_states(_book(request).list_rules(), request)


@router.post("", status_code=201, summary="Add an alert rule")
def add_rule(request: Request, body: RuleIn, user: User = None) -> dict[str, Any]:
    author = who(request, user)
    rule = build_rule(
        body.name, when=body.when, model=body.model, window=body.window, for_=body.for_,
        severity=body.severity, notify=body.notify, cooldown=body.cooldown,
        description=body.description, created_by=author,
    )  # fmt: skip
    return _book(request).add(rule, author).to_json()


@router.get("/metrics", summary="The metrics a rule's condition can name")
def list_metrics() -> list[dict[str, str]]:
    return [
        {
            "name": m.name,
            "unit": m.unit,
            "scope": m.scope,
            "help": m.help,
        }
        for m in sorted(METRICS.values(), key=lambda m: m.name)
    ]


@router.get("/history", summary="Alerts sent, newest first, with every delivery attempt")
def history(
    request: Request,
    rule: str | None = None,
    model: str | None = None,
    since: Annotated[str | None, Query(description=f"From: {TIME_FORMS}; default: all.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    return read_history(project_of(request).engine, rule, model, _since(since), limit)


@router.get("/{name}", summary="One alert rule with each model's state")
def get_rule(request: Request, name: str) -> dict[str, Any]:
    return _with_states([_book(request).get(name)], request)[0]


@router.delete("/{name}", summary="Remove a stored alert rule (its history stays)")
def remove_rule(request: Request, name: str, user: User = None) -> dict[str, Any]:
    return _book(request).remove(name, who(request, user)).to_json()


@router.post("/{name}/test", summary="Send a test notification to each channel of a rule")
def test_rule(request: Request, name: str) -> list[dict[str, Any]]:
    project = project_of(request)
    outcomes = send_test(project.engine, project.settings, _book(request).get(name))
    return [{"channel": label, "sent": o.is_sent, "detail": o.detail} for label, o in outcomes]


def routes() -> list[BaseRoute]:
    return list(router.routes)


def _since(text: str | None) -> datetime | None:
    """A span back from now (`1h`) or an ISO time; BadLogQuery (400) naming `since`."""
    return parse_time("since", text) if text is not None else None
