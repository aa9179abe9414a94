"""`pointsman route | canary | promote | rollback`: policies set, shown, audited and refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import joblib
import pytest
from click.testing import CliRunner, Result

from pointsman.cli.canary import canary, parse_hold
from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET, make_data
from pointsman.registry.lineage import current_user
from tests.conftest import ProjectTemplates


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def third_churn(
    churn_files: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A third, slightly different churn model: v1's pipeline refitted with another C."""
    model = joblib.load(churn_files[0][0])
    data = make_data(300, seed=5)
    model.set_params(clf__C=0.3).fit(data.drop(columns=[TARGET]), data[TARGET])
    path = tmp_path_factory.mktemp("churn3") / "churn_v3.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture
def p(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store_kind: str,
    project_templates: ProjectTemplates,
    churn_files: list[tuple[Path, Path]],
    third_churn: Path,
) -> list[str]:
    """`--project DIR` of a project with churn versions 1, 2, 3 registered, none deployed:
    a copy of its own of one prepared once per run."""

    def prepare(folder: Path, database_url: str) -> None:
        run("init", str(folder), "--database-url", database_url)
        data = churn_files[0][1]
        for path in [churn_files[0][0], churn_files[1][0], third_churn]:
            run(
                *["--project", str(folder)],
                *["register", "churn", str(path), "--training-data", str(data)],
                *["--target", TARGET],
            )

    folder = project_templates.copy(request, "churn-1-2-3", store_kind, prepare, tmp_path)
    return ["--project", str(folder)]


def route_json(p: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(*p, "route", "churn", "--json").output)
    return data


def test_route_sets_every_part_of_the_policy_and_shows_it(p: list[str]) -> None:
    run(*p, "deploy", "churn", "1")
    out = run(
        *p, "route", "churn", "--ab", "1=90,2=10", "--key", "customer_id", "--shadow", "3",
        "--fallback", "2", "--timeout-ms", "200", "--reason", "try gbm",
    ).output  # fmt: skip
    assert "churn route revision 2: arms 1=100 → 1=90, 2=10; key none → customer_id;" in flat(out)
    assert "shadow +3; fallback none → 2; timeout none → 200 ms." in flat(out)
    policy = route_json(p)
    assert policy["revision"] == 2 and policy["reason"] == "try gbm"
    assert policy["arms"] == [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    assert policy["shadows"] == [{"version": 3, "sample": 1.0}]
    assert (policy["key"], policy["fallback"], policy["timeout_ms"]) == ("customer_id", 2, 200)
    assert policy["created_by"] == current_user()
    shown = run(*p, "route", "churn").output
    for text in ("churn route revision 2", "1=90, 2=10", "customer_id", "200 ms", "try gbm"):
        assert text in shown


def test_options_not_given_keep_their_values_and_no_flags_clear_them(p: list[str]) -> None:
    run(*p, "deploy", "churn", "1")
    run(*p, "route", "churn", "--key", "customer_id", "--fallback", "2", "--timeout-ms", "150")
    out = run(*p, "route", "churn", "--shadow", "2@0.25", "--shadow", "3").output
    assert "shadow +2@0.25; shadow +3" in flat(out)
    policy = route_json(p)
    assert (policy["key"], policy["fallback"], policy["timeout_ms"]) == ("customer_id", 2, 150)
    assert policy["shadows"] == [{"version": 2, "sample": 0.25}, {"version": 3, "sample": 1.0}]
    run(*p, "route", "churn", "--shadow", "3@0.5,2")  # comma-separated replaces the shadows
    assert route_json(p)["shadows"] == [
        {"version": 3, "sample": 0.5},
        {"version": 2, "sample": 1.0},
    ]
    out = run(*p, "route", "churn", "--no-key", "--no-shadow", "--no-fallback", "--no-timeout")
    assert "key customer_id → none; shadow -3@0.5; shadow -2" in flat(out.output)
    policy = route_json(p)
    assert policy["arms"] == [{"version": 1, "weight": 100}]
    assert not {"key", "shadows", "fallback", "timeout_ms"} & policy.keys()


def test_history_says_who_when_what_changed_and_why(p: list[str]) -> None:
    run(*p, "deploy", "churn", "1")
    run(*p, "route", "churn", "--ab", "1=90,2=10", "--shadow", "3", "--reason", "a/b")
    run(*p, "route", "churn", "--ab", "1=80,2=20", "--no-shadow")
    run(*p, "route", "churn", "--breaker-failures", "3", "--breaker-pause-s", "10")
    history = json.loads(run(*p, "route", "churn", "--history", "--json").output)
    assert [h["revision"] for h in history] == [1, 2, 3, 4]
    assert [h["changes"] for h in history] == [
        ["first revision", "arms 1=100"],
        ["arms 1=100 → 1=90, 2=10", "shadow +3"],
        ["arms 1=90, 2=10 → 1=80, 2=20", "shadow -3"],
        ["breaker 5 failures/30 s → 3 failures/10 s"],
    ]
    assert [h["reason"] for h in history] == ["deploy version 1", "a/b", "", ""]
    assert {h["created_by"] for h in history} == {current_user()}
    assert all(h["created_at"] for h in history)
    table = run(*p, "route", "churn", "--history").output
    assert "churn route history" in table and "what changed" in table and "a/b" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ab", "1=90,2=20"], "arm weights must sum to 100, got 1=90, 2=20 (= 110)"),
        (["--ab", "1=90,9=10"], "version 9 does not exist (versions: 1, 2, 3)"),
        (["--ab", "1=90,2=10", "--shadow", "2"], "version 2 is both a primary arm and a shadow"),
        (["--fallback", "1"], "fallback 1 is the only primary; a fallback must be another"),
        (["--shadow", "3@2"], "shadow sample of version 3 must be in (0, 1], got 2.0"),
        (["--timeout-ms", "0"], "timeout must be 1 ms to 600000 ms, got 0"),
        (["--ab", "1=x"], "weight in '1=x' must be a whole number"),
        (["--shadow", "v3"], "version in 'v3' must be a whole number"),
        (["--key", "id", "--no-key"], "--no-key contradicts the value given for it"),
        (["--history", "--ab", "1"], "--history only shows revisions"),
    ],
)
def test_route_refusals_say_what_to_change_and_write_nothing(
    p: list[str], args: list[str], message: str
) -> None:
    run(*p, "deploy", "churn", "1")
    result = run(*p, "route", "churn", *args, ok=False)
    assert result.exit_code != 0 and message in flat(result.output), result.output
    assert "Traceback" not in result.output
    assert route_json(p)["revision"] == 1


def test_route_of_unknown_or_undeployed_model(p: list[str]) -> None:
    result = run(*p, "route", "nope", ok=False)
    assert result.exit_code == 1 and "Model 'nope' not found" in flat(result.output)
    result = run(*p, "route", "churn", ok=False)
    assert "is registered but not deployed" in flat(result.output)
    assert "pointsman deploy churn 3" in flat(result.output)
    assert json.loads(run(*p, "route", "churn", "--history", "--json").output) == []
    first = run(*p, "route", "churn", "--ab", "2").output
    assert "churn route revision 1: first revision; arms 2=100" in flat(first)


def test_canary_starts_shows_refuses_a_second_and_aborts(p: list[str]) -> None:
    run(*p, "deploy", "churn", "1")
    assert "churn has no canary" in flat(run(*p, "canary", "churn", "--status").output)
    out = run(*p, "canary", "churn", "2", "--steps", "5,25,50,100", "--hold", "500req,2m").output
    assert "Canary of churn version 2 started at 5 % against version 1" in flat(out)
    policy = route_json(p)
    assert policy["arms"] == [{"version": 1, "weight": 95}, {"version": 2, "weight": 5}]
    assert (policy["canary"]["hold_requests"], policy["canary"]["hold_s"]) == (500, 120.0)
    status = json.loads(run(*p, "canary", "churn", "--status", "--json").output)
    assert (status["state"], status["candidate"], status["weight"]) == ("running", 2, 5)
    text = run(*p, "canary", "churn", "--status").output
    assert "running" in text and "1 of 4: 5 %" in text and "window of this step" in text

    again = run(*p, "canary", "churn", "3", ok=False)
    assert again.exit_code == 1 and "already has a canary of version 2" in flat(again.output)
    change = run(*p, "route", "churn", "--key", "customer_id", ok=False)
    assert "has a canary of version 2 running" in flat(change.output)

    out = run(*p, "canary", "churn", "--abort", "--reason", "too slow").output
    assert "Canary of churn aborted: version 1 answers all traffic again" in flat(out)
    assert route_json(p)["arms"] == [{"version": 1, "weight": 100}]
    status = json.loads(run(*p, "canary", "churn", "--status", "--json").output)
    assert (status["state"], status["candidate"], status["reason"]) == ("aborted", 2, "too slow")
    history = json.loads(run(*p, "route", "churn", "--history", "--json").output)
    assert history[-1]["changes"] == ["arms 1=95, 2=5 → 1=100", "canary of 2 aborted at 5 %"]
    result = run(*p, "canary", "churn", "--abort", ok=False)
    assert "has no canary running" in flat(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["2", "--steps", "50,5"], "canary steps must rise strictly within 1..100"),
        (["2", "--hold", "5x"], "'5x' is neither Nreq nor a time"),
        (["2", "--steps", "5,a"], "each step must be a whole number"),
        (["1"], "Version 1 is already the primary of 'churn'"),
        (["9"], "has no version '9' (versions: 1, 2, 3)"),
        ([], "give VERSION to start a canary"),
        (["2", "--status"], "give VERSION to start a canary"),
        (["--status", "--abort"], "give --status or --abort, not both"),
    ],
)
def test_canary_refusals(p: list[str], args: list[str], message: str) -> None:
    run(*p, "deploy", "churn", "1")
    result = run(*p, "canary", "churn", *args, ok=False)
    assert result.exit_code != 0 and message in flat(result.output), result.output
    assert route_json(p)["revision"] == 1


@pytest.mark.parametrize(
    ("text", "hold"),
    [
        ("500req,2m", (500, 120.0)),
        ("2m,500req", (500, 120.0)),
        ("1000req", (1000, 120.0)),
        ("90s", (500, 90.0)),
        ("1.5m, 20req", (20, 90.0)),
        ("1h", (500, 3600.0)),
        ("0req,0s", (0, 0.0)),
    ],
)
def test_hold_takes_requests_and_time_in_any_order(text: str, hold: tuple[int, float]) -> None:
    ctx = click.Context(canary)
    assert parse_hold(ctx, canary.params[0], text) == hold


@pytest.mark.parametrize("text", ["5x", "2m,3m", "1req,2req", "req", "-1req"])
def test_hold_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_hold(click.Context(canary), canary.params[0], text)


def test_promote_ends_a_running_canary_and_rollback_goes_back(p: list[str]) -> None:
    run(*p, "deploy", "churn", "1")
    result = run(*p, "rollback", "churn", ok=False)
    assert result.exit_code == 1
    assert "has no earlier route revision to roll back to" in flat(result.output)
    run(*p, "canary", "churn", "2", "--steps", "10,100")
    out = run(*p, "promote", "churn", "2").output
    assert "arms 1=90, 2=10 → 2=100; canary of 2 promoted at 10 %" in flat(out)
    status = json.loads(run(*p, "canary", "churn", "--status", "--json").output)
    assert (status["state"], status["candidate"]) == ("promoted", 2)
    out = run(*p, "rollback", "churn", "--reason", "alerts").output
    # The revision before was a running canary: rollback returns to its baseline alone.
    assert "route revision 4: arms 2=100 → 1=100" in flat(out)
    policy = route_json(p)
    assert policy["arms"] == [{"version": 1, "weight": 100}] and policy["reason"] == "alerts"
    promoted = json.loads(run(*p, "promote", "churn", "3", "--json").output)
    assert promoted["arms"] == [{"version": 3, "weight": 100}]
    assert promoted["reason"] == "promote version 3" and promoted["changes"] == [
        "arms 1=100 → 3=100"
    ]
    result = run(*p, "promote", "churn", "9", ok=False)
    assert "has no version '9'" in flat(result.output)
    rolled = json.loads(run(*p, "rollback", "churn", "--json").output)
    assert rolled["arms"] == [{"version": 1, "weight": 100}] and rolled["revision"] == 6


def test_every_route_command_has_help() -> None:
    for name in ("route", "canary", "promote", "rollback"):
        assert "[OPTIONS] MODEL" in run(name, "--help").output
