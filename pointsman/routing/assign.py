"""Which primary arm answers a request: sticky by routing key, random without one."""

from __future__ import annotations

import hashlib
import random

from pointsman.routing.policy import Arm

_SCALE = float(1 << 64)


def key_point(model: str, key: str) -> float:
    """A stable point in [0, 1) for a routing key (the same on every worker and replica)."""
    digest = hashlib.blake2b(f"{model}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def choose_arm(model: str, arms: tuple[Arm, ...], key: str | None, rng: random.Random) -> int:
    """The version of the arm whose cumulative weight range holds the key's point.

    Arms are laid out in version order, so moving weight between two arms moves only
    the keys in the slice that changed hands (90/10 → 80/20 moves 10 % of keys).
    """
    point = key_point(model, key) if key is not None else rng.random()
    edge = 0.0
    live = [a for a in sorted(arms, key=lambda a: a.version) if a.weight > 0]
    for arm in live:
        edge += arm.weight / 100
        if point < edge:
            return arm.version
    return live[-1].version
