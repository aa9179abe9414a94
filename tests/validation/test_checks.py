"""Profile checks: each rule on each type, tolerances, nulls, unicode, big category sets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pointsman.registry.profiles import build_profile, infer_columns
from pointsman.types import ColumnSpec, Finding, Frame, Signature
from pointsman.validation.checks import HASHED_ROWS, SCALAR_ROWS, ProfileChecks, normalize
from pointsman.validation.signature import build_frame

TRAINING = pd.DataFrame(
    {
        "tenure": [1, 12, 24, 36, 48, 60, 72, 6, 18, 30],  # range 1..72
        "charges": [20.0, 35.5, 50.0, 65.0, 80.0, 95.0, 110.0, 25.0, 45.0, 60.0],  # 20..110
        "plan": ["basic", "premium", "standard"] * 3 + ["basic"],
        "city": ["Zürich", "Straße", "Köln", "Zürich", "Köln"] * 2,
        "flag": [True, False] * 5,
    }
)


def checks_for(training: pd.DataFrame, tolerance: float = 0.1) -> tuple[Signature, ProfileChecks]:
    columns = infer_columns(training)
    signature = Signature(inputs=tuple(columns))
    return signature, ProfileChecks.build(signature, build_profile(training, columns), tolerance)


def frame_of(signature: Signature, rows: list[dict[str, Any]]) -> Frame:
    columns = {c.name: [r.get(c.name) for r in rows] for c in signature.inputs}
    return build_frame(signature, columns, len(rows))


def found(rows: list[dict[str, Any]], training: pd.DataFrame = TRAINING, **kw: Any) -> set[tuple]:
    signature, checks = checks_for(training, **kw)
    frame = frame_of(signature, rows)
    return {(f.row, f.feature, f.rule) for f in checks.check(frame)}


GOOD = {"tenure": 12, "charges": 50.0, "plan": "basic", "city": "Köln", "flag": True}


def test_rows_like_the_training_data_have_no_findings() -> None:
    assert found([GOOD, {**GOOD, "tenure": 72, "charges": 20.0, "plan": "premium"}]) == set()


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"tenure": 80}, "out_of_range"),  # 72 + 10 % of 71 = 79.1
        ({"tenure": -7}, "out_of_range"),  # 1 - 7.1 = -6.1
        ({"charges": 121.5}, "out_of_range"),  # 110 + 9 = 119
        ({"charges": 10.5}, "out_of_range"),  # 20 - 9 = 11
        ({"plan": "gold"}, "unknown_category"),
        ({"plan": "Premium "}, "near_miss_category"),
        ({"plan": "PREMIUM"}, "near_miss_category"),
        ({"city": "STRASSE"}, "near_miss_category"),  # casefold: ß is ss
        ({"city": "zürich"}, "near_miss_category"),
        ({"city": "Zurich"}, "unknown_category"),  # a different letter is not a near miss
    ],
)
def test_each_rule_fires_on_its_feature_and_row(change: dict[str, Any], rule: str) -> None:
    [feature] = change
    assert found([GOOD, {**GOOD, **change}]) == {(1, feature, rule)}


@pytest.mark.parametrize(("tenure", "flagged"), [(79, False), (80, True), (-6, False), (-7, True)])
def test_the_range_widens_by_the_tolerance(tenure: int, flagged: bool) -> None:
    assert bool(found([{**GOOD, "tenure": tenure}])) is flagged


def test_tolerance_is_a_share_of_the_training_range() -> None:
    assert found([{**GOOD, "tenure": 100}], tolerance=0.5) == set()  # 72 + 35.5
    assert found([{**GOOD, "tenure": 73}], tolerance=0.0) == {(0, "tenure", "out_of_range")}


def test_a_constant_training_feature_still_has_a_band() -> None:
    training = pd.DataFrame({"x": [5.0] * 10, "y": [1.0, 2.0] * 5, "z": ["a", "b"] * 5})
    assert found([{"x": 5.4, "y": 1.0, "z": "a"}], training) == set()
    assert found([{"x": 5.6, "y": 1.0, "z": "a"}], training) == {(0, "x", "out_of_range")}


def test_a_finding_names_row_feature_value_rule_and_what_is_allowed() -> None:
    signature, checks = checks_for(TRAINING)
    [f] = checks.check(frame_of(signature, [GOOD, {**GOOD, "plan": "PREMIUM"}]))
    assert f == Finding(
        1,
        "plan",
        "PREMIUM",
        "near_miss_category",
        "one of 'basic', 'premium', 'standard'",
        "did you mean 'premium'?",
    )
    [g] = checks.check(frame_of(signature, [{**GOOD, "tenure": 500}]))
    assert g.to_json() == {
        "row": 0,
        "feature": "tenure",
        "value": 500,
        "rule": "out_of_range",
        "allowed": "-6.1 to 79.1 (training 1 to 72)",
    }


def test_nulls_are_flagged_only_where_training_had_none() -> None:
    training = TRAINING.assign(
        income=[1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        segment=["a", None, "b", "a", "b", "a", "b", "a", "b", "a"],
    )
    columns = [ColumnSpec(c.name, c.type, True) for c in infer_columns(training)]
    signature = Signature(inputs=tuple(columns))
    checks = ProfileChecks.build(signature, build_profile(training, columns), 0.1)
    row = {**GOOD, "income": None, "segment": None, "charges": None, "plan": None}
    findings = {(f.feature, f.rule) for f in checks.check(frame_of(signature, [row]))}
    assert findings == {("charges", "unexpected_null"), ("plan", "unexpected_null")}


def test_infinity_and_nan_in_typed_tensors_are_findings() -> None:
    signature, checks = checks_for(TRAINING)
    frame = frame_of(signature, [GOOD, GOOD, GOOD])
    frame.columns["charges"] = np.array([math.inf, -math.inf, math.nan])
    assert [(f.row, f.rule, f.to_json()["value"]) for f in checks.check(frame)] == [
        (0, "not_finite", "inf"),
        (1, "not_finite", "-inf"),
        (2, "unexpected_null", None),
    ]


def test_rows_of_defaults_or_one_repeated_value_are_flagged() -> None:
    training = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 5, 9], "c": ["x", "y", "z"]})
    rows = [
        {"a": 0.0, "b": 0, "c": ""},  # all defaults
        {"a": 2.0, "b": 2, "c": "2"},  # one value throughout
        {"a": 2.0, "b": 5, "c": "x"},  # fine
    ]
    got = {(r, rule) for r, f, rule in found(rows, training) if f == "(row)"}
    assert got == {(0, "default_row"), (1, "constant_row")}


def test_ten_thousand_categories_are_checked_in_constant_time() -> None:
    names = [f"sku-{i:05d}" for i in range(10_000)]
    training = pd.DataFrame({"sku": names * 2, "qty": list(range(20_000)), "w": [1.0] * 20_000})
    signature, checks = checks_for(training)
    [check] = checks.categorical
    assert check.check_set and len(check.categories) == 10_000
    rows = [{"sku": "sku-09999", "qty": 3, "w": 1.0}, {"sku": "SKU_09999", "qty": 3, "w": 1.0}]
    rows.append({"sku": "sku-10000", "qty": 3, "w": 1.0})
    result = {(f.row, f.rule, f.hint) for f in checks.check(frame_of(signature, rows))}
    assert result == {
        (1, "near_miss_category", "did you mean 'sku-09999'?"),
        (2, "unknown_category", ""),
    }


def test_identifier_like_text_is_not_held_to_a_category_set() -> None:
    training = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(100)], "x": range(100), "y": [1.0] * 100}
    )
    assert found([{"customer_id": "c-new", "x": 3, "y": 1.0}], training) == set()


def test_features_without_a_profile_are_not_checked() -> None:
    signature = Signature(inputs=(ColumnSpec("x", "double"),))
    checks = ProfileChecks.build(signature, None, 0.1)
    assert checks.check(frame_of(signature, [{"x": 1e300}])) == []


@pytest.mark.parametrize("arrow_text", [False, True])
@pytest.mark.parametrize("n", [1, SCALAR_ROWS, SCALAR_ROWS + 1, 500, HASHED_ROWS + 1])
def test_the_scalar_and_vector_paths_agree(n: int, arrow_text: bool) -> None:
    rng = np.random.default_rng(n)
    rows = [
        {
            "tenure": int(rng.integers(-20, 100)),
            "charges": float(rng.choice([rng.normal(60, 40), math.nan])),
            "plan": str(rng.choice(["basic", "BASIC", "gold", "premium"])),
            "city": "Köln",
            "flag": bool(rng.integers(0, 2)),
        }
        for _ in range(n)
    ]
    columns = [ColumnSpec(c.name, c.type, True) for c in infer_columns(TRAINING)]
    signature = Signature(inputs=tuple(columns))
    checks = ProfileChecks.build(signature, build_profile(TRAINING, columns), 0.1)
    frame = frame_of(signature, rows)
    if arrow_text:  # as a batch job hands text to a DataFrame-fed model
        for name in ("plan", "city"):
            frame.columns[name] = pa.array(frame.columns[name].tolist()).to_pandas().array
    expected = set()
    for i, row in enumerate(rows):
        if not -6.1 <= row["tenure"] <= 79.1:
            expected.add((i, "tenure", "out_of_range"))
        charge = row["charges"]
        if math.isnan(charge):
            expected.add((i, "charges", "unexpected_null"))
        elif not 11 <= charge <= 119:
            expected.add((i, "charges", "out_of_range"))
        if row["plan"] == "gold":
            expected.add((i, "plan", "unknown_category"))
        elif row["plan"] == "BASIC":
            expected.add((i, "plan", "near_miss_category"))
    assert {(f.row, f.feature, f.rule) for f in checks.check(frame)} == expected


def test_normalize_ignores_case_spaces_and_separators() -> None:
    assert normalize("  Two_Year ") == normalize("two-year") == normalize("TWO  YEAR") == "two year"


def test_row_rules_hold_on_large_batches_too() -> None:
    training = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 5, 9], "c": ["x", "y", "z"]})
    rows = [{"a": 2.0, "b": 5, "c": "x"}] * (SCALAR_ROWS * 3)
    rows[4] = {"a": 0.0, "b": 0, "c": ""}
    rows[9] = {"a": 7.0, "b": 7, "c": "7"}
    rows[11] = {"a": 7.0, "b": 7, "c": "8"}  # numbers alike, text differs: not constant
    got = {(r, rule) for r, f, rule in found(rows, training) if f == "(row)"}
    assert got == {(4, "default_row"), (9, "constant_row")}
