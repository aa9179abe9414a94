"""Keys are stored as hashes and compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
import sqlalchemy as sa

from pointsman.auth import KeyBook, KeyCache, hash_key
from pointsman.auth import keycache as keycache_module
from pointsman.errors import BadRequest, KeyExists, Unauthorized
from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.tables import api_keys


@pytest.fixture
def book(tmp_path: Path) -> KeyBook:
    engine = connect(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade_to_head(engine)
    return KeyBook(engine)


def test_only_the_hash_is_stored(book: KeyBook) -> None:
    key, record = book.create("app", ["predict:churn"], "t")
    assert key.startswith("pk_") and len(key) == 46
    with book.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert row.key_hash == hash_key(key) and key not in repr(row)
    assert record.prefix == key[:8]
    with pytest.raises(KeyExists, match="active key named 'app' exists"):
        book.create("app", ["predict:churn"], "t")
    with pytest.raises(BadRequest, match="is not allowed"):
        book.create("no spaces", ["admin"], "t")


def test_known_and_unknown_keys_go_through_one_constant_time_comparison(
    book: KeyBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = book.create("app", ["predict:churn"], "t")
    cache = KeyCache(book)
    cache.refresh(force=True)
    calls: list[tuple[str, str]] = []
    compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(keycache_module.hmac, "compare_digest", spy)
    assert cache.authenticate(key, 0.0).name == "app"
    with pytest.raises(Unauthorized, match="not valid"):
        cache.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"), 0.0)
    with pytest.raises(Unauthorized, match="pk_"):
        cache.authenticate("secret-token", 0.0)
    assert len(calls) == 3 and all(len(a) == len(b) == 64 for a, b in calls)
