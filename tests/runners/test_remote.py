"""Which versions run elsewhere and where (remote_runners), and the secret that guards them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pointsman.errors import ConfigError
from pointsman.runners.remote import RemoteRunners, dns_name, expand, split_address

SECRET = "remote-test-secret-0123"


@pytest.mark.parametrize(
    ("model", "version", "expected"),
    [
        ("churn", 2, ["10.0.0.1:7070", "10.0.0.2:7070"]),  # MODEL:VERSION first
        ("churn", 3, ["churn-all:7070"]),  # then MODEL
        ("Fraud_EU", 4, ["pointsman-runner-fraud-eu-4:7070"]),  # then *, filled in
    ],
)
def test_the_first_matching_entry_names_the_runners(
    model: str, version: int, expected: list[str]
) -> None:
    remote = RemoteRunners(
        {
            "churn:2": "10.0.0.1:7070, 10.0.0.2:7070",
            "churn": "churn-all:7070",
            "*": "pointsman-runner-{model}-{version}:7070",
        },
        SECRET,
    )
    assert remote.addresses(model, version) == expected


def test_without_an_entry_the_runners_run_beside_the_server() -> None:
    remote = RemoteRunners({"churn": "churn:7070"}, SECRET)
    assert remote.addresses("fraud", 1) is None
    assert not remote.is_remote("fraud", 1)
    assert not RemoteRunners({}, "")


@pytest.mark.parametrize(
    ("mapping", "secret", "words"),
    [
        ({"churn": "churn"}, SECRET, "is not host:port"),
        ({"churn": "churn:http"}, SECRET, "is not host:port"),
        ({"churn": "churn:7070"}, "", "is not set"),
        ({"churn": "churn:7070"}, "short", "has 5 characters"),
    ],
)
def test_a_bad_entry_or_secret_is_refused_at_start(
    mapping: dict[str, str], secret: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        RemoteRunners(mapping, secret)


def test_addresses_and_names() -> None:
    assert split_address("[::1]:7070") == ("::1", 7070)
    assert dns_name("Churn_EU.v2") == "churn-eu-v2"
    assert expand(["127.0.0.1:7070"]) == ["127.0.0.1:7070"]
    # A name with several addresses (a headless Service): one runner each.
    found = expand(["localhost:7070"])
    assert "127.0.0.1:7070" in found or found == ["localhost:7070"]
    assert expand(["no-such-host.invalid:7070"]) == ["no-such-host.invalid:7070"]


def test_runner_serve_refuses_to_listen_without_a_secret(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pointsman", "--project", str(tmp_path), "runner", "serve",
         "churn", "1", "--listen", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "POINTSMAN_RUNNER_SECRET": ""},
    )  # fmt: skip
    assert done.returncode == 1
    assert "runner_secret" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
