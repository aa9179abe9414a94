"""Drift quality on synthetic streams: quiet without drift, loud on the feature that moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pointsman.monitoring.drift import Thresholds, psi, window_drift
from pointsman.registry.profiles import build_profile, infer_columns

T = Thresholds()
WINDOW = 1000


def training(rng: np.random.Generator, n: int = 5000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.normal(36, 12, n),
            "charges": rng.gamma(4, 15, n),  # skewed
            "calls": rng.poisson(1.5, n),  # few distinct values
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.35, 0.15]),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )


@pytest.fixture(scope="module")
def profile() -> dict:
    data = training(np.random.default_rng(1))
    return build_profile(data, infer_columns(data))


def columns(frame: pd.DataFrame) -> dict[str, list]:
    return {c: frame[c].tolist() for c in frame.columns}


def grades(frame: pd.DataFrame, profile: dict) -> dict[str, str]:
    return {d.feature: d.grade for d in window_drift(columns(frame), profile, T)}


def test_no_drift_raises_no_alarm_over_fifty_windows(profile: dict) -> None:
    rng = np.random.default_rng(2)
    flagged = [
        g for _ in range(50) for g in grades(training(rng, WINDOW), profile).values() if g != "ok"
    ]
    # 250 feature-windows without drift: not one warning (PSI stays far below 0.1).
    assert flagged == []


def test_psi_without_drift_stays_near_its_sampling_noise(profile: dict) -> None:
    rng = np.random.default_rng(3)
    values = [
        d.psi for _ in range(20) for d in window_drift(columns(training(rng, WINDOW)), profile, T)
    ]
    assert max(v for v in values if v is not None) < 0.05


def test_half_a_standard_deviation_shift_is_caught_in_one_window_on_that_feature(
    profile: dict,
) -> None:
    rng = np.random.default_rng(4)
    for _ in range(10):
        window = training(rng, WINDOW)
        window["tenure"] += 6  # 0.5 sd
        found = grades(window, profile)
        assert found["tenure"] in ("warn", "alert")
        assert [f for f, g in found.items() if g != "ok"] == ["tenure"]


def test_ks_agrees_on_the_shift(profile: dict) -> None:
    rng = np.random.default_rng(5)
    window = training(rng, WINDOW)
    quiet = {d.feature: d for d in window_drift(columns(window), profile, T)}
    window["tenure"] += 6
    moved = {d.feature: d for d in window_drift(columns(window), profile, T)}
    assert moved["tenure"].test == "ks" and moved["tenure"].p_value < 1e-6
    assert quiet["tenure"].p_value > 0.01


def test_a_new_dominant_category_is_an_alert_naming_it(profile: dict) -> None:
    rng = np.random.default_rng(6)
    window = training(rng, WINDOW)
    window.loc[: WINDOW * 6 // 10, "plan"] = "enterprise"
    drift = {d.feature: d for d in window_drift(columns(window), profile, T)}
    assert drift["plan"].grade == "alert"
    assert drift["plan"].top_change.startswith("new categories: 0.0% in training")
    assert drift["plan"].test == "chi2" and drift["plan"].p_value < 1e-6
    assert {f for f, d in drift.items() if d.grade != "ok"} == {"plan"}


def test_a_shift_among_known_categories_is_caught(profile: dict) -> None:
    rng = np.random.default_rng(7)
    window = training(rng, WINDOW)
    window["plan"] = rng.choice(["basic", "standard", "premium"], WINDOW, p=[0.2, 0.3, 0.5])
    drift = {d.feature: d for d in window_drift(columns(window), profile, T)}
    assert drift["plan"].grade == "alert" and "'premium'" in drift["plan"].top_change


def test_values_past_the_training_range_land_in_the_outer_bins(profile: dict) -> None:
    rng = np.random.default_rng(8)
    window = training(rng, WINDOW)
    window["charges"] = window["charges"] + 1000  # all beyond the training maximum
    drift = {d.feature: d for d in window_drift(columns(window), profile, T)}
    assert drift["charges"].grade == "alert" and "100.0% now" in drift["charges"].top_change


def test_a_small_window_is_too_small_never_drift(profile: dict) -> None:
    window = training(np.random.default_rng(9), 50)
    window["tenure"] += 100
    assert set(grades(window, profile).values()) == {"too_small"}


def test_psi_of_identical_shares_is_zero_and_grows_with_the_gap() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert 0 < psi([0.5, 0.5], [0.6, 0.4]) < psi([0.5, 0.5], [0.9, 0.1])
    assert np.isfinite(psi([1.0, 0.0], [0.0, 1.0]))
