"""Scopes: `predict:<model>`, `read:<model>`, `register:<model>`, `outcome:<model>`,
`deploy:<model>` (or `*` for every model) and `admin`.

`deploy:<model>` lets a data scientist change that model's route and versions from the
console (deploy, canary, weights, promote, rollback, upload) without holding `admin`.

`admin` covers every scope: the key `pointsman init` prints can do anything.
"""

from __future__ import annotations

import re

from pointsman.errors import BadRequest

_MODEL = r"(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
SCOPE = rf"^(admin|(predict|read|register|outcome|deploy):{_MODEL})$"  # in the API schema too
_SCOPE = re.compile(SCOPE)


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, deduplicated and sorted; BadRequest names the first one not understood."""
    if not scopes:
        raise BadRequest(
            "A key needs at least one scope: --scope predict:MODEL, read:MODEL, "
            "register:MODEL, outcome:MODEL, deploy:MODEL or admin."
        )
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise BadRequest(
                f"Scope {scope!r} is not understood; use predict:MODEL, read:MODEL, "
                "register:MODEL, outcome:MODEL, deploy:MODEL (MODEL may be *) or admin."
            )
    return sorted(set(scopes))


def covers(granted: frozenset[str], needed: str) -> bool:
    """Whether scopes `granted` allow `needed` (`predict:churn`, `read:churn`, `admin`)."""
    if "admin" in granted or needed in granted:
        return True
    kind, _, model = needed.partition(":")
    if not model:
        return False
    return f"{kind}:*" in granted
