"""pointsman: run trained models in production with one stable endpoint per model."""

__version__ = "0.1.0"

__all__ = ["__version__"]
