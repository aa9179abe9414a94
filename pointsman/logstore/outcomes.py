"""Outcomes: the true values of predictions, stored by key and joined to prediction records.

An outcome names a request id (and the row of that request, 0 by default) or the value of
the business key the route names (`outcome_key`, e.g. customer_id). Storing is idempotent:
the same key again replaces the value (a correction) or changes nothing. The join happens
when records are read, so an outcome that arrives before its record is matched as soon as
the record is shipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.errors import BadRequest, OutcomeWithoutKey
from pointsman.logstore.query import REQUEST_ID, LogQuery, iter_predictions, parse_time
from pointsman.store.tables import outcomes as t
from pointsman.store.tables import prediction_log

MAX_OUTCOMES = 10_000  # per call: a bigger file goes in several
MAX_ROW = 2**31 - 1  # a row of a request (the store's column is an integer)


@dataclass(frozen=True)
class Outcome:
    """One true value, by request id and row or by business key."""

    key_name: str
    key_value: str
    row: int
    value: Any
    observed_at: datetime | None = None


def parse_outcomes(
    items: Iterable[dict[str, Any]], outcome_key: str | None, value_field: str = "outcome"
) -> list[Outcome]:
    """Outcomes from JSON objects or CSV rows; BadRequest names the first bad one."""
    out = []
    hint = f"`{REQUEST_ID}`" + (f" or `{outcome_key}`" if outcome_key else "")
    for i, item in enumerate(items):
        where = f"outcome {i}"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} is not an object; give {{{hint}: ..., {value_field}: ...}}.")
        if value_field not in item or _blank(item[value_field]):
            raise BadRequest(f"{where} has no `{value_field}`: give the true value there.")
        if not _blank(item.get(REQUEST_ID)):
            name, value = REQUEST_ID, item[REQUEST_ID]
        elif outcome_key and not _blank(item.get(outcome_key)):
            name, value = outcome_key, item[outcome_key]
        else:
            extra = (
                ""
                if outcome_key
                else (
                    " To send outcomes by a business key, name it on the route: "
                    "`pointsman route MODEL --outcome-key customer_id`."
                )
            )
            raise OutcomeWithoutKey(f"{where} names no prediction: give {hint}.{extra}")
        row = _row(item.get("row"), where) if name == REQUEST_ID else 0
        observed = item.get("time")
        when = None if _blank(observed) else parse_time(f"{where} time", str(observed))
        out.append(Outcome(name, _text(value), row, _plain(item[value_field]), when))
    if len(out) > MAX_OUTCOMES:
        raise BadRequest(f"{len(out)} outcomes in one call; send at most {MAX_OUTCOMES} at a time.")
    return out


def store_outcomes(
    engine: Engine,
    model: str,
    outcomes: list[Outcome],
    client: str | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Store `outcomes`; counts of stored, updated, unchanged, and of request-id outcomes
    whose record is in the log now (matched) or not yet (waiting: matched when it comes)."""
    now = now or datetime.now(UTC)
    counts = {"stored": 0, "updated": 0, "unchanged": 0, "matched": 0, "waiting": 0, "by_key": 0}
    latest = {(o.key_name, o.key_value, o.row): o for o in outcomes}  # last one of a key wins
    with engine.begin() as conn:
        for (name, value, row), o in latest.items():
            where = (t.c.model == model) & (t.c.key_name == name)
            where &= (t.c.key_value == value) & (t.c.row == row)
            found = conn.execute(sa.select(t.c.id, t.c.outcome).where(where)).first()
            if found is None:
                conn.execute(t.insert().values(
                    model=model, key_name=name, key_value=value, row=row, outcome=o.value,
                    observed_at=o.observed_at or now, received_at=now, client=client,
                ))  # fmt: skip
                counts["stored"] += 1
            elif found.outcome == o.value:
                counts["unchanged"] += 1
            else:
                conn.execute(t.update().where(t.c.id == found.id).values(
                    outcome=o.value, observed_at=o.observed_at or now, received_at=now,
                    client=client,
                ))  # fmt: skip
                counts["updated"] += 1
        ids = sorted({v for n, v, _ in latest if n == REQUEST_ID})
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = sa.select(prediction_log.c.request_id).where(
                (prediction_log.c.model == model) & prediction_log.c.request_id.in_(chunk)
            )
            known |= {str(r) for (r,) in conn.execute(query)}
    for name, value, _ in latest:
        if name != REQUEST_ID:
            counts["by_key"] += 1
        else:
            counts["matched" if value in known else "waiting"] += 1
    return counts


@dataclass(frozen=True)
class Stored:
    """An outcome as read back: its value and when it was observed and received."""

    value: Any
    observed_at: datetime
    received_at: datetime


class OutcomeBook:
    """A model's outcomes in memory, looked up by request id and row or by business key."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self.by_key: dict[tuple[str, str, int], Stored] = {}
        for r in rows:
            stored = Stored(r.outcome, _aware(r.observed_at), _aware(r.received_at))
            self.by_key[(r.key_name, r.key_value, r.row)] = stored

    def __len__(self) -> int:
        return len(self.by_key)

    @property
    def by_request_id_only(self) -> bool:
        """Every outcome names its request id: only those records can be labelled."""
        return all(key_name == REQUEST_ID for key_name, _, _ in self.by_key)

    def find(self, record: dict[str, Any], row: int, outcome_key: str | None) -> Stored | None:
        """The outcome of `row` of `record`: by its request id, else by the business key."""
        found = self.by_key.get((REQUEST_ID, str(record["request_id"]), row))
        if found is not None or not outcome_key:
            return found
        column = (record.get("inputs") or {}).get(outcome_key)
        if not column or row >= len(column) or column[row] is None:
            return None
        found = self.by_key.get((outcome_key, _text(column[row]), 0))
        # A business key's outcome labels the predictions made for it before it was observed.
        if found is not None and found.observed_at < _aware_iso(record["time"]):
            return None
        return found


def attach_outcomes(engine: Engine, records: list[dict[str, Any]]) -> None:
    """Give each record the outcomes sent for its request id (`{"0": value}` by row), when
    any: the prediction log shows what was true beside what was answered."""
    ids = sorted({str(r["request_id"]) for r in records})
    if not ids:
        return
    query = sa.select(t.c.model, t.c.key_value, t.c.row, t.c.outcome).where(
        (t.c.key_name == REQUEST_ID) & t.c.key_value.in_(ids)
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        for model, rid, row, value in conn.execute(query):
            found.setdefault((model, rid), {})[str(row)] = value
    for record in records:
        outcomes = found.get((record["model"], str(record["request_id"])))
        if outcomes is not None:
            record["outcomes"] = outcomes


def load_outcomes(engine: Engine, model: str) -> OutcomeBook:
    """Every outcome stored for `model`."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.model == model)).all()
    return OutcomeBook(rows)


@dataclass(frozen=True)
class Labelled:
    """One answered row with its outcome: what the version said, and what was true."""

    version: int
    role: str
    time: datetime
    prediction: Any
    probabilities: list[float] | None
    classes: list[Any] | None
    outcome: Any
    lateness_s: float


def labelled_rows(
    engine: Engine, query: LogQuery, book: OutcomeBook, outcome_key: str | None
) -> Iterator[Labelled]:
    """Every answered row of the records `query` matches that has an outcome."""
    for record in iter_predictions(engine, query):
        outputs = record.get("outputs") or {}
        predictions = outputs.get("predictions")
        if not predictions or record.get("error_code"):
            continue
        probabilities, classes = outputs.get("probabilities"), outputs.get("classes")
        when = _aware_iso(record["time"])
        for row, prediction in enumerate(predictions):
            found = book.find(record, row, outcome_key)
            if found is None:
                continue
            yield Labelled(
                version=int(record["version"]),
                role=str(record["role"]),
                time=when,
                prediction=prediction,
                probabilities=None if probabilities is None else probabilities[row],
                classes=classes,
                outcome=found.value,
                lateness_s=max(0.0, (found.received_at - when).total_seconds()),
            )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _text(value: Any) -> str:
    """A key as stored: 42, 42.0 and "42" are the same customer."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)[:256]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _row(value: Any, where: str) -> int:
    if _blank(value):
        return 0
    try:
        row = int(value)
        whole = row == float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"{where}: row must be a whole number, got {value!r:.40}.") from None
    if not whole or not 0 <= row <= MAX_ROW:
        raise BadRequest(f"{where}: row must be a whole number 0 to {MAX_ROW}, got {value!r:.40}.")
    return row


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _aware_iso(text: str | datetime) -> datetime:
    return _aware(text if isinstance(text, datetime) else datetime.fromisoformat(text))
