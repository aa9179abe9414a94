"""Settings: renamed options keep working under their old name, with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.settings import load_settings


def test_server_log_level_from_the_toml_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(tmp_path).server_log_level == "info"
    (tmp_path / "pointsman.toml").write_text('server_log_level = "warning"\n')
    assert load_settings(tmp_path).server_log_level == "warning"
    monkeypatch.setenv("POINTSMAN_SERVER_LOG_LEVEL", "debug")
    assert load_settings(tmp_path).server_log_level == "debug"


@pytest.mark.parametrize("where", ["toml", "env"])
def test_the_old_name_log_level_still_works_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "toml":
        (tmp_path / "pointsman.toml").write_text('log_level = "error"\n')
    else:
        monkeypatch.setenv("POINTSMAN_LOG_LEVEL", "error")
    with pytest.warns(FutureWarning, match="now server_log_level"):
        assert load_settings(tmp_path).server_log_level == "error"
    monkeypatch.setenv("POINTSMAN_SERVER_LOG_LEVEL", "critical")  # the new name wins
    with pytest.warns(FutureWarning):
        assert load_settings(tmp_path).server_log_level == "critical"
