"""Checks of every input against what the version was trained on.

Nothing is imported here: route policies import `validation.policy`, and the commands that
only read them must not load numpy with `validation.signature` (build_frame, records_to_columns).
"""
