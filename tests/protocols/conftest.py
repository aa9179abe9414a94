"""Signatures shared by the protocol tests: a mixed-type customer table and iris."""

from __future__ import annotations

import pytest

from pointsman.types import ColumnSpec, Signature

from .samples import IRIS_COLUMNS


@pytest.fixture
def customer() -> Signature:
    return Signature(
        inputs=(
            ColumnSpec("age", "long"),
            ColumnSpec("income", "double"),
            ColumnSpec("plan", "string"),
            ColumnSpec("active", "boolean"),
        ),
        outputs=("predictions", "probabilities"),
        classes=("churn", "stay"),
    )


@pytest.fixture
def iris() -> Signature:
    return Signature(inputs=tuple(ColumnSpec(n, "double") for n in IRIS_COLUMNS), classes=(0, 1, 2))
