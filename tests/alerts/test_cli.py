"""`pointsman alerts add | list | remove | history | test`, and rules from pointsman.toml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.alerts.conftest import Mailbox
from tests.cli.test_routes_cli import flat, run

FILE_RULE = """
smtp_host = "127.0.0.1"
smtp_port = {port}

[[alerts]]
name = "loads"
model = "churn"
when = "version_load_failed > 0"
window = "10m"
severity = "critical"
notify = ["email=ops@example.com"]
description = "A version failed to load: look at the server log."
"""


@pytest.fixture
def p(tmp_path: Path) -> list[str]:
    folder = tmp_path / "proj"
    run("init", str(folder))
    return ["--project", str(folder)]


def test_add_list_remove_with_redacted_secrets(p: list[str]) -> None:
    slack = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    out = run(
        *p, "alerts", "add", "flags", "--model", "churn", "--when", "validation_flag_rate > 5%",
        "--window", "10m", "--for", "1m", "--severity", "critical", "--notify",
        "webhook=http://127.0.0.1:9/hook", "--notify", f"slack={slack}",
        "--notify", "email=ops@example.com", "--cooldown", "30m",
    ).output  # fmt: skip
    assert "Added alert rule flags: validation_flag_rate > 0.05 on churn." in out
    (rule,) = json.loads(run(*p, "alerts", "list", "--json").output)
    assert rule["when"] == "validation_flag_rate > 0.05"
    assert (rule["window"], rule["for"], rule["cooldown"]) == ("10m", "1m", "30m")
    assert rule["notify"] == [
        "webhook=http://127.0.0.1:9/…", "slack=https://hooks.slack.com/…", "email=ops@example.com",
    ]  # fmt: skip
    assert rule["source"] == "store" and rule["states"] == []
    listed = flat(run(*p, "alerts", "list").output)
    assert "flags" in listed and "SECRET" not in listed
    again = run(*p, "alerts", "add", "flags", "--when", "error_rate > 0.1", ok=False)
    assert again.exit_code == 1 and "exists already" in again.output
    assert "Removed alert rule flags." in run(*p, "alerts", "remove", "flags").output
    assert json.loads(run(*p, "alerts", "list", "--json").output) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--when", "errors > 1"], "unknown metric 'errors' (known metrics: accuracy,"),
        (["--when", "error_rate >> 1"], "is not METRIC OP NUMBER"),
        (["--when", "error_rate > 1", "--for", "5 minutes"], "for '5 minutes' is not a duration"),
        (["--when", "error_rate > 1", "--notify", "pager=x"], "KIND=TARGET with KIND one of"),
        (["--when", "error_rate > 1", "--notify", "slack=hooks.slack.com/x"], "not an http(s) URL"),
    ],
    ids=["unknown-metric", "bad-condition", "bad-duration", "bad-channel", "bad-url"],
)
def test_refused_rules_say_why(p: list[str], args: list[str], message: str) -> None:
    result = run(*p, "alerts", "add", "r", *args, ok=False)
    assert result.exit_code == 1
    assert message in flat(result.output)
    assert "Traceback" not in result.output


def test_file_rules_are_listed_read_only_and_testable(
    p: list[str], smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    folder = Path(p[1])
    with (folder / "pointsman.toml").open("a") as f:
        f.write(FILE_RULE.format(port=port))
    (rule,) = json.loads(run(*p, "alerts", "list", "--json").output)
    assert (rule["name"], rule["source"], rule["severity"]) == ("loads", "file", "critical")
    taken = run(*p, "alerts", "add", "loads", "--when", "error_rate > 0.1", ok=False)
    assert "is defined in pointsman.toml" in taken.output
    removed = run(*p, "alerts", "remove", "loads", ok=False)
    assert removed.exit_code == 1 and "cannot be removed from here" in flat(removed.output)

    out = run(*p, "alerts", "test", "loads").output
    assert out.startswith("sent    email=ops@example.com  accepted by 127.0.0.1")
    (mail,) = mailbox.all()
    assert mail["Subject"] == "[pointsman TEST critical] loads on churn"
    assert "A version failed to load" in mail.get_payload()
    (entry,) = json.loads(run(*p, "alerts", "history", "--json").output)
    assert (entry["rule"], entry["event"]) == ("loads", "test")
    assert [d["outcome"] for d in entry["deliveries"]] == ["sent"]
    assert "loads" in flat(run(*p, "alerts", "history", "--since", "1h").output)


def test_test_reports_a_dead_channel_and_exits_1(p: list[str], dead_url: str) -> None:
    run(
        *p, "alerts", "add", "dead", "--when", "error_rate > 0.1", "--notify", f"webhook={dead_url}"
    )
    result = run(*p, "alerts", "test", "dead", ok=False)
    assert result.exit_code == 1
    assert "FAILED  webhook=http://127.0.0.1:" in result.output and "ConnectError" in result.output


def test_a_bad_file_rule_stops_serve_with_the_reason(p: list[str]) -> None:
    with (Path(p[1]) / "pointsman.toml").open("a") as f:
        f.write('\n[[alerts]]\nname = "x"\nwhen = "p95 > 1"\n')
    result = run(*p, "serve", "--port", "0", ok=False)
    assert result.exit_code == 1
    assert "Alert rule 'x' refused: unknown metric 'p95'" in flat(result.output)
    assert "Traceback" not in result.output


def test_names_of_the_api_paths_are_reserved(p: list[str]) -> None:
    result = run(*p, "alerts", "add", "history", "--when", "error_rate > 0.1", ok=False)
    assert "'history' is reserved" in flat(result.output)
