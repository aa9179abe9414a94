"""Checks of every input against what the version was trained on."""

from pointsman.validation.signature import build_frame, records_to_columns

__all__ = ["build_frame", "records_to_columns"]
