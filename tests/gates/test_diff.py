"""`pointsman diff`: known differences come out as set, exit 0 at a threshold and 1 past it;
B may be a file not registered yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pointsman.cli.main import cli
from tests.gates.synthetic import concept, fit_classifier, fit_regressor, inputs, training_of


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, str], Path]:
    """A SQLite project with `reg` v1, v2 (+0.05 on every answer) and `clf` v1, v2 (noisier);
    the store is not what is tested here."""
    root = tmp_path_factory.mktemp("diff")
    folder = root / "proj"
    run("init", str(folder))
    p = ("--project", str(folder))
    for name, path in (
        ("reg", fit_regressor(root, "reg1")), ("reg", fit_regressor(root, "reg2", shift=0.05)),
        ("clf", fit_classifier(root, "clf1")), ("clf", fit_classifier(root, "clf2", 0.3, 5)),
    ):  # fmt: skip
        run(*p, "register", name, str(path), "--training-data", str(training_of(path)),
            "--target", "y", "--no-compile")  # fmt: skip
    test = inputs(400, seed=9)
    test.assign(y=concept(test)).to_csv(root / "test.csv", index=False)
    return p, root


def report(proj: tuple[tuple[str, str], Path], *args: str, code: int = 0) -> dict[str, object]:
    p, root = proj
    out = root / "report.json"
    out.unlink(missing_ok=True)
    run(*p, "diff", *args, "--data", str(root / "test.csv"), "--json", str(out), code=code)
    data: dict[str, object] = json.loads(out.read_text())
    return data


def test_a_known_shift_of_a_regressor_passes_at_its_threshold_and_fails_past_it(
    proj: tuple[tuple[str, str], Path],
) -> None:
    found = report(proj, "reg", "1", "2")
    assert found["kind"] == "regression" and found["passed"] is True
    assert found["mean_diff"] == pytest.approx(0.05) and found["max_abs_diff"] == pytest.approx(
        0.05
    )
    mad = float(str(found["mean_abs_diff"]))
    assert report(proj, "reg", "1", "2", "--max-mean-abs-diff", repr(mad))["passed"] is True
    failed = report(proj, "reg", "1", "2", "--max-mean-abs-diff", "0.04", code=1)
    assert failed["failures"] == [f"mean absolute difference {mad:.4g} > 0.04"]


def test_label_flips_are_counted_with_examples_and_gate_the_exit_code(
    proj: tuple[tuple[str, str], Path],
) -> None:
    found = report(proj, "clf", "1", "2", "--target", "y")
    flip = float(str(found["flip_rate"]))
    assert 0 < flip < 0.5 and found["examples"] and found["flips"] and found["segments"]
    quality = found["quality"]
    assert isinstance(quality, dict)
    assert quality["v1"]["accuracy"] > quality["v2"]["accuracy"]
    assert report(proj, "clf", "1", "2", "--max-flip-rate", repr(flip))["passed"] is True
    report(proj, "clf", "1", "2", "--max-flip-rate", repr(flip - 0.001), code=1)


def test_b_may_be_a_file_not_registered_yet(proj: tuple[tuple[str, str], Path]) -> None:
    p, root = proj
    same = report(proj, "clf", "1", str(root / "clf1.joblib"), "--max-flip-rate", "0")
    assert same["flip_rate"] == 0 and same["b"] == "clf1.joblib"
    text = run(*p, "diff", "clf", "1", "2", "--data", str(root / "test.csv")).output
    assert "label flips" in text and "PASS" in text
    missing = run(*p, "diff", "clf", "1", "nope.joblib", "--data", str(root / "test.csv"), code=1)
    assert "neither a version number nor an existing model file" in " ".join(missing.output.split())
