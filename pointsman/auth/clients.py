"""Clients: the applications that call models, as records (name, owner, contact, purpose),
and the keys requested for them. A developer requests a key for a model; an admin approves
or refuses it; once approved, the developer who asked collects the key (shown once). Each
step is audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.auth.keys import KeyBook
from pointsman.auth.scopes import check_scopes
from pointsman.errors import BadRequest, RouteConflict
from pointsman.store.audit import write_audit
from pointsman.store.rollups import clients_with_tail, minute_of
from pointsman.store.tables import clients, key_requests, prediction_log
from pointsman.types import as_utc

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


@dataclass(frozen=True)
class ClientRecord:
    """An application: who owns it, how to reach them, what it uses models for."""

    name: str
    owner: str
    contact: str
    purpose: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class KeyRequest:
    """A key asked for a client and model: pending, approved, refused or collected."""

    id: int
    client: str
    model: str
    scopes: tuple[str, ...]
    note: str
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    reason: str
    key_name: str | None


@dataclass(frozen=True)
class Usage:
    """A client's calls over a window, summed over its keys."""

    requests: int
    errors: int
    last_seen: datetime | None


class ClientBook:
    """Client records and key requests in the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_clients(self) -> list[ClientRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(clients).order_by(clients.c.name)).all()
        return [
            ClientRecord(r.name, r.owner, r.contact, r.purpose, as_utc(r.created_at), r.created_by)
            for r in rows
        ]

    def find_client(self, name: str) -> ClientRecord | None:
        return next((c for c in self.list_clients() if c.name == name), None)

    def create_client(
        self, name: str, owner: str, contact: str, purpose: str, who: str
    ) -> ClientRecord:
        """A new client record (audited `client.create`); BadRequest names what is missing."""
        name = name.strip()
        if not _NAME.match(name):
            raise BadRequest(
                f"Client name {name!r} is not allowed: up to 48 letters, digits, '_', '.' or "
                "'-', starting with a letter or digit."
            )
        for field, value in (("owner", owner), ("contact", contact), ("purpose", purpose)):
            if not value.strip():
                raise BadRequest(f"Give the client's {field}: the admin approving keys reads it.")
        if self.find_client(name) is not None:
            raise BadRequest(f"A client named {name!r} exists already; pick it instead.")
        now = datetime.now(UTC)
        values = {"name": name, "owner": owner.strip()[:128], "contact": contact.strip()[:256],
                  "purpose": purpose.strip()}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(clients.insert().values(**values, created_at=now, created_by=who))
            write_audit(conn, who, "client.create", f"client:{name}", None, values)
        return ClientRecord(**values, created_at=now, created_by=who)

    def request_key(
        self, client: str, model: str, scopes: list[str], note: str, who: str
    ) -> KeyRequest:
        """Ask for a key of `client` with `scopes` on `model` (audited `key_request.create`)."""
        if self.find_client(client) is None:
            raise BadRequest(f"No client named {client!r}: describe the application first.")
        granted = check_scopes(scopes)
        for scope in granted:
            if scope == "admin" or not scope.endswith(f":{model}"):
                raise BadRequest(f"A request may ask for scopes on {model!r} only, not {scope!r}.")
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            found = conn.execute(
                key_requests.insert().values(
                    client=client, model=model, scopes=granted, note=note.strip(),
                    state="pending", requested_by=who, requested_at=now,
                )
            )  # fmt: skip
            request_id = int(found.inserted_primary_key[0])  # type: ignore[index]
            asked = {"id": request_id, "model": model, "scopes": granted, "note": note}
            write_audit(conn, who, "key_request.create", f"client:{client}", None, asked)
        return self.get_request(request_id)

    def list_requests(self, requested_by: str | None = None) -> list[KeyRequest]:
        query = sa.select(key_requests).order_by(key_requests.c.id.desc())
        if requested_by is not None:
            query = query.where(key_requests.c.requested_by == requested_by)
        with self.engine.connect() as conn:
            return [_request(r) for r in conn.execute(query)]

    def get_request(self, request_id: int) -> KeyRequest:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(key_requests).where(key_requests.c.id == request_id)
            ).first()
        if row is None:
            raise BadRequest(f"No key request {request_id}.")
        return _request(row)

    def decide(self, request_id: int, approve: bool, reason: str, who: str) -> KeyRequest:
        """Approve or refuse a pending request (audited `key_request.approve|refuse`)."""
        if not reason.strip():
            raise BadRequest("Say why: the reason is kept with the request and in the audit log.")
        state = "approved" if approve else "refused"
        with self.engine.begin() as conn:
            done = conn.execute(
                key_requests.update()
                .where((key_requests.c.id == request_id) & (key_requests.c.state == "pending"))
                .values(state=state, decided_by=who, decided_at=datetime.now(UTC), reason=reason)
            )
            if done.rowcount != 1:
                raise RouteConflict(f"Key request {request_id} is not pending any more.")
            write_audit(conn, who, f"key_request.{state[:-1] if approve else 'refuse'}",
                        f"key_request:{request_id}", {"state": "pending"},
                        {"state": state}, reason)  # fmt: skip
        return self.get_request(request_id)

    def collect(self, request_id: int, who: str) -> str:
        """The key of an approved request, created now for the one who asked (shown once)."""
        request = self.get_request(request_id)
        if request.requested_by != who:
            raise BadRequest("Only the one who asked for this key may collect it.")
        if request.state != "approved":
            raise RouteConflict(f"Key request {request_id} is {request.state}, not approved.")
        name = f"{request.client}-{request.model}-{request.id}"[:64]
        key, _ = KeyBook(self.engine).create(name, list(request.scopes), who)
        with self.engine.begin() as conn:
            conn.execute(
                key_requests.update()
                .where(key_requests.c.id == request_id)
                .values(state="collected", key_name=name)
            )
        return key

    def usage(self, window_s: float = 86400.0) -> dict[str, Usage]:
        """Client name → its keys' requests, errors and last call over the window's minutes
        (from the per-minute client rollups and the records not rolled up yet; the last
        call's time from its last minute)."""
        with self.engine.connect() as conn:
            keys: dict[str, str] = {
                r.key_name: r.client
                for r in conn.execute(
                    sa.select(key_requests.c.key_name, key_requests.c.client).where(
                        key_requests.c.key_name.is_not(None)
                    )
                )
            }
            if not keys:
                return {}
            first = minute_of(datetime.now(UTC)) - int(window_s // 60) + 1
            r = clients_with_tail(conn, lambda c: [c.minute >= first, c.client.in_(list(keys))]).c
            rows = conn.execute(
                sa.select(
                    r.client, sa.func.sum(r.requests), sa.func.sum(r.errors), sa.func.max(r.minute)
                ).group_by(r.client)
            ).all()
            last_calls = {name: _last_call(conn, name, minute) for name, _, _, minute in rows}
        out: dict[str, Usage] = {}
        for key_name, count, errors, _ in rows:
            client = keys[key_name]
            before = out.get(client, Usage(0, 0, None))
            seen = last_calls[key_name]
            latest = (
                max(d for d in (before.last_seen, seen) if d) if seen or before.last_seen else None
            )
            out[client] = Usage(before.requests + int(count), before.errors + int(errors), latest)
        return out


def _last_call(conn: Connection, key_name: str, minute: int) -> datetime | None:
    """The time of a key's last call in that minute: one minute of records, by time."""
    t = prediction_log.c
    start = datetime.fromtimestamp(minute * 60, UTC)
    last = conn.execute(
        sa.select(sa.func.max(t.time)).where(
            t.time >= start,
            t.time < start + timedelta(minutes=1),
            t.client == key_name,
            t.role != "shadow",
        )
    ).scalar_one()
    return as_utc(last) if last is not None else None


def _request(row: Any) -> KeyRequest:
    return KeyRequest(
        row.id, row.client, row.model, tuple(row.scopes), row.note, row.state,
        row.requested_by, as_utc(row.requested_at), row.decided_by, row.reason, row.key_name,
    )  # fmt: skip
