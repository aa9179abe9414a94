"""What a model is for: its description, owner and tags (the catalogue's editable fields)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.errors import BadRequest, ModelNotFound
from pointsman.store.audit import write_audit
from pointsman.store.tables import models

TAG = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$"  # the admin API's schema shows it too
_TAG = re.compile(TAG)
MAX_DESCRIPTION = 4000
MAX_TAGS = 20


@dataclass(frozen=True)
class About:
    """A model's description, owner (a person or team) and tags."""

    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "owner": self.owner, "tags": list(self.tags)}


def check_about(description: str, owner: str, tags: list[str]) -> About:
    """An About from user input; BadRequest names what is wrong."""
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(
            f"The description has {len(description)} characters; keep it under "
            f"{MAX_DESCRIPTION} (the details belong in the docs it can link to)."
        )
    if len(owner) > 128:
        raise BadRequest("The owner is over 128 characters: name a person or a team.")
    cleaned = sorted({t.strip() for t in tags if t.strip()})
    for tag in cleaned:
        if not _TAG.match(tag):
            raise BadRequest(
                f"Tag {tag!r} is not allowed: up to 32 letters, digits, '_', '.', ':' or '-', "
                "starting with a letter or digit."
            )
    if len(cleaned) > MAX_TAGS:
        raise BadRequest(f"{len(cleaned)} tags given; at most {MAX_TAGS}.")
    return About(description.strip(), owner.strip(), tuple(cleaned))


def _from_row(row: Any) -> About:
    return About(row.description or "", row.owner or "", tuple(row.tags or ()))


def load_abouts(engine: Engine) -> dict[str, About]:
    """Model name → About, for every model."""
    query = sa.select(models.c.name, models.c.description, models.c.owner, models.c.tags)
    with engine.connect() as conn:
        return {r.name: _from_row(r) for r in conn.execute(query)}


def load_about(engine: Engine, model: str) -> About:
    """One model's About; ModelNotFound lists the known models."""
    found = load_abouts(engine)
    if model not in found:
        raise ModelNotFound(model, sorted(found))
    return found[model]


def save_about(engine: Engine, model: str, about: About, who: str) -> About:
    """Replace a model's About, audited (`model.about`) with the state before and after."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(models).where(models.c.name == model)).first()
        if row is None:
            names = conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars()
            raise ModelNotFound(model, list(names))
        before = _from_row(row)
        conn.execute(
            models.update()
            .where(models.c.id == row.id)
            .values(description=about.description, owner=about.owner, tags=list(about.tags))
        )
        write_audit(conn, who, "model.about", f"model:{model}", before.to_json(), about.to_json())
    return about
