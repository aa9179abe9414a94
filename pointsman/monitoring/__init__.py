"""Watching served models: Prometheus metrics, and drift of inputs and outputs against the
reference profile."""
