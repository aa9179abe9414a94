"""Loaders per artifact format; each gives a Runtime that turns a Frame into Outputs."""

from pointsman.runtimes.base import FORMATS, Runtime, RuntimeInfo, detect_format, load_runtime

__all__ = ["FORMATS", "Runtime", "RuntimeInfo", "detect_format", "load_runtime"]
