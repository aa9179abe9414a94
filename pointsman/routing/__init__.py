"""Route revisions: which version(s) answer each model."""

from pointsman.routing.revisions import Arm, Route, RouteBook

__all__ = ["Arm", "Route", "RouteBook"]
