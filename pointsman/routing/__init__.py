"""Route revisions, traffic policies and the decisions made from them."""

from pointsman.routing.policy import Arm, Canary, Gates, Policy, Shadow, check_policy
from pointsman.routing.revisions import (
    Route,
    RouteBook,
    RouteChange,
    canary_policy,
    history_json,
    rollback_policy,
    sole_policy,
)

__all__ = [
    "Arm",
    "Canary",
    "Gates",
    "Policy",
    "Route",
    "RouteBook",
    "RouteChange",
    "Shadow",
    "canary_policy",
    "check_policy",
    "history_json",
    "rollback_policy",
    "sole_policy",
]
