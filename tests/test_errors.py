"""Error messages name what was wrong, and say how much more there is when they cut a list."""

from __future__ import annotations

from pointsman.errors import FieldProblem, InputRejected, InvalidInput
from pointsman.types import Finding


def test_invalid_input_lists_twenty_problems_and_counts_the_rest() -> None:
    problems = [FieldProblem(f"f{i}", "missing", expected="long") for i in range(23)]
    message = InvalidInput(problems).message
    assert message.startswith("Input does not match the model's signature: 'f0': missing")
    assert "'f19'" in message and "'f20'" not in message
    assert message.endswith("; and 3 more.")
    assert InvalidInput(problems[:2]).message.endswith("(expected long).")


def test_input_rejected_is_an_invalid_input_with_its_problems_and_rows() -> None:
    findings = [Finding(i, ["plan", "age"][i % 2], i, "out_of_range", "0..9") for i in range(60)]
    error = InputRejected("churn", findings)
    assert isinstance(error, InvalidInput) and error.code == "input_rejected"
    assert len(error.problems) == 60 and error.problems[1].field == "age"
    assert "(rows 0, 1, 2," in error.message and "49, and 10 more):" in error.message
    assert "; and 40 more. Fix the input" in error.message
    assert error.message.endswith("`pointsman route churn --validation-feature age=flag`.")
    assert error.to_json()["fields"][0] == error.problems[0].to_json()
    assert error.to_json()["rows"] == list(range(60))
