"""The collector's settings in a long-lived serving process (an HTTP worker, a runner)."""

from __future__ import annotations

import gc

# Container allocations between two young collections (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once start-up is done: what it built leaves the collector's sight; young collections
    come rarer.

    Frozen, the start-up heap (the model, the app, the catalog) is no longer walked by a full
    collection, which took ~100 ms under load. A request allocates a few hundred containers:
    at 700 the young generation is collected every few requests, and whatever those in flight
    hold is promoted, filling the older generations with short-lived objects and bringing full
    collections, the pauses a p99 sees, more often. A collection walks only what is young, so
    rarer ones cost about the same CPU in all.
    """
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), middle, old)
