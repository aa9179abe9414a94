"""Watching served models: drift of inputs and outputs against the reference profile."""
