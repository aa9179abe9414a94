"""Prediction-log settings read from pointsman.toml, as an operator writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.errors import ConfigError
from pointsman.settings import Redaction, load_settings


def test_redaction_rules_and_policy_come_from_the_toml_file(tmp_path: Path) -> None:
    (tmp_path / "pointsman.toml").write_text(
        'log_hash_salt = "pepper"\nlog_spool_full_policy = "refuse"\n'
        "[log_redact.churn]\n"
        'drop = ["email"]\nhash = ["customer_id"]\ntruncate = { postcode = 3 }\n'
    )
    settings = load_settings(tmp_path)
    assert settings.log_redact == {
        "churn": Redaction(drop=["email"], hash=["customer_id"], truncate={"postcode": 3})
    }
    assert settings.log_hash_salt == "pepper" and settings.log_spool_full_policy == "refuse"


def test_a_misspelt_rule_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pointsman.toml").write_text('[log_redact.churn]\nhide = ["email"]\n')
    with pytest.raises(ConfigError, match=r"log_redact\.churn\.hide"):
        load_settings(tmp_path)
