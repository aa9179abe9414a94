"""Route revisions, traffic policies and the decisions made from them."""

from pointsman.routing.policy import Arm, Canary, Gates, Policy, Shadow, check_policy
from pointsman.routing.revisions import Route, RouteBook, canary_policy

__all__ = [
    "Arm",
    "Canary",
    "Gates",
    "Policy",
    "Route",
    "RouteBook",
    "Shadow",
    "canary_policy",
    "check_policy",
]
