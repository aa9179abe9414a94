"""The circuit breaker opens after N failures in a row and probes after the pause."""

from __future__ import annotations

from pointsman.routing.breaker import Breaker


def test_breaker_opens_after_n_failures_and_closes_after_a_good_probe() -> None:
    b = Breaker()
    for t in range(4):
        assert b.allow(t, pause_s=30)
        b.failure(t, threshold=5)
    assert b.state == "closed"
    b.failure(4, threshold=5)
    assert b.state == "open" and not b.allow(10, pause_s=30)
    assert b.allow(34, pause_s=30) and b.state == "half_open"
    assert not b.allow(34.5, pause_s=30)  # one probe at a time
    b.success()
    assert b.state == "closed" and b.allow(35, pause_s=30)


def test_a_failed_probe_opens_it_again_for_another_pause() -> None:
    b = Breaker()
    for t in range(3):
        b.failure(t, threshold=3)
    assert b.allow(40, pause_s=30)
    b.failure(40, threshold=3)
    assert b.state == "open" and not b.allow(60, pause_s=30) and b.allow(71, pause_s=30)


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    b = Breaker()
    for t in range(10):
        b.failure(t, threshold=3) if t % 2 else b.success()
    assert b.state == "closed"
