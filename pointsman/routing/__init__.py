"""Route revisions, traffic policies and the decisions made from them.

Only what holds no store is imported here (policies, a route as read): the commands that
just print a route must not load SQLAlchemy. `RouteBook` and the policy builders are in
`pointsman.routing.revisions`.
"""

from pointsman.routing.policy import Arm, Canary, Gates, Policy, Shadow, check_policy
from pointsman.routing.route import Route, RouteChange, history_json

__all__ = [
    "Arm",
    "Canary",
    "Gates",
    "Policy",
    "Route",
    "RouteChange",
    "Shadow",
    "check_policy",
    "history_json",
]
