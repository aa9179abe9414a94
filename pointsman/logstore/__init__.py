"""The prediction log: records spooled per worker, shipped to the store (one shipping per
server), queried back."""

from pointsman.logstore.query import LogQuery, find_predictions, iter_predictions
from pointsman.logstore.writer import PredictionLog

__all__ = ["LogQuery", "PredictionLog", "find_predictions", "iter_predictions"]
