"""Token buckets shared through one file: what two worker processes see."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pointsman.auth import RateLimiter, hash_key
from pointsman.auth.keys import parse_rate, parse_span
from pointsman.auth.ratelimit import capacity_of, retry_after_header
from pointsman.auth.scopes import check_scopes, covers
from pointsman.errors import BadRequest

KEY = hash_key("pk_test")


def allowed(limiters: list[RateLimiter], rate: float, burst: float, seconds: float) -> int:
    """Requests allowed when the limiters take turns, 10 attempts per ms of simulated time."""
    count, now, step = 0, 1_000_000.0, 0.0001
    for i in range(int(seconds / step)):
        count += limiters[i % len(limiters)].take(KEY, rate, burst, now + i * step) == 0.0
    return count


def test_two_limiters_on_one_file_share_one_bucket(tmp_path: Path) -> None:
    shared = [RateLimiter(tmp_path / "r.bin"), RateLimiter(tmp_path / "r.bin")]
    apart = [RateLimiter(None), RateLimiter(None)]
    # One burst, then the rate (give or take the last token's float rounding) ...
    assert abs(allowed(shared, 100.0, 10.0, 2.0) - (10 + 200)) <= 1
    # ... where two separate counters would let twice as many through.
    assert abs(allowed(apart, 100.0, 10.0, 2.0) - 2 * (10 + 200)) <= 2


def _hammer(path: Path, start: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = RateLimiter(path)
    got = sum(limiter.take(KEY, 50.0, 5.0, start + i * 0.001) == 0.0 for i in range(2000))
    out.put(got)


def test_processes_updating_one_file_never_lose_an_update(tmp_path: Path) -> None:
    # Both processes draw from one bucket with the same (simulated) clock: the total is
    # what one bucket allows in 2 s, whatever the interleaving, if the lock holds.
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(tmp_path / "r.bin", 5000.0, out)) for _ in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    total = out.get(timeout=5) + out.get(timeout=5)
    assert abs(total - (5 + 100)) <= 2, total  # one burst + 2 s at 50/s, not twice that


def test_a_refused_request_learns_when_to_retry(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "r.bin")
    assert limiter.take(KEY, 0.5, 1.0, 100.0) == 0.0
    wait = limiter.take(KEY, 0.5, 1.0, 100.5)
    assert wait == pytest.approx(1.5)
    assert retry_after_header(wait) == "2" and retry_after_header(0.01) == "1"


@pytest.mark.parametrize(
    ("text", "count", "per_s"),
    [("100/s", 100, 100.0), ("6000/min", 6000, 100.0), ("36/h", 36, 0.01), ("5 / sec", 5, 5.0)],
)
def test_rates_are_read_with_their_unit(text: str, count: int, per_s: float) -> None:
    assert parse_rate(text) == (count, pytest.approx(per_s))
    assert capacity_of(per_s) == max(1.0, per_s / 2)


@pytest.mark.parametrize("text", ["100", "0/s", "10/day", "-1/s", "fast"])
def test_unreadable_rates_say_how_to_write_one(text: str) -> None:
    with pytest.raises(BadRequest, match=r"e\.g\. 100/s"):
        parse_rate(text)


def test_spans_and_scopes() -> None:
    assert parse_span("90d").days == 90 and parse_span("12h").seconds == 43200
    with pytest.raises(BadRequest, match=r"e\.g\. 90d"):
        parse_span("3 months")
    assert check_scopes(["read:churn", "predict:*", "read:churn"]) == ["predict:*", "read:churn"]
    for bad in ([], ["predict"], ["predict:"], ["write:churn"], ["predict:a b"]):
        with pytest.raises(BadRequest):
            check_scopes(bad)
    granted = frozenset({"predict:churn", "read:*"})
    assert covers(granted, "predict:churn") and covers(granted, "read:iris")
    assert not covers(granted, "predict:iris") and not covers(granted, "admin")
    assert not covers(granted, "predict:*") and covers(frozenset({"admin"}), "predict:iris")
