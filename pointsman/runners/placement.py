"""Runner specs per model and version: pointsman.toml, then changes made in the store.

Resolution for one version, each layer changing only the fields it sets: the defaults
(replicas: half the CPUs, at least one),
`[runners."*"]`, `[runners.MODEL]`, `[runners."MODEL:VERSION"]` in pointsman.toml, then the
store's row for the model (version 0) and for the version (`pointsman runners`, the admin
API). Every store change is audited and bumps the change counter, so servers pick it up.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.errors import CompiledRuntimeRefused, ConfigError
from pointsman.registry import VersionRecord
from pointsman.registry.models import bump_changes
from pointsman.runners.spec import (
    RunnerSpec,
    default_replicas,
    parse_bytes,
    parse_cpu,
    parse_memory,
    parse_seconds,
)
from pointsman.settings import RunnerConfig
from pointsman.store.audit import write_audit
from pointsman.store.tables import models, runner_specs, versions
from pointsman.store.upsert import update_or_insert

Changes = dict[str, Any]  # RunnerSpec field → value, only the fields a layer sets


def from_config(config: RunnerConfig, where: str) -> Changes:
    """A pointsman.toml table as spec changes (sizes and durations read from text)."""
    out: Changes = {}
    for name in ("replicas", "queue", "max_batch_rows", "max_wait_ms", "runtime"):
        value = getattr(config, name)
        if value is not None:
            out[name] = value
    if config.cpu is not None:
        out["cpu"] = parse_cpu(config.cpu, f"{where} cpu")
    if config.memory is not None:
        out["memory_bytes"] = parse_memory(str(config.memory), f"{where} memory")
    if config.disk is not None:
        out["disk_bytes"] = parse_bytes(str(config.disk), f"{where} disk")
    if config.timeout is not None:
        out["timeout_s"] = parse_seconds(str(config.timeout), f"{where} timeout")
    return out


class RunnerBook:
    """Reads and changes runner specs; a spec that cannot hold is refused with the reason."""

    def __init__(self, engine: Engine, configured: dict[str, RunnerConfig]) -> None:
        self.engine = engine
        self.base = RunnerSpec(replicas=default_replicas())
        self.layers = {key: from_config(c, f"[runners.{key}]") for key, c in configured.items()}
        for key in self.layers:  # refuse a bad table at start, not at the first load
            self.spec(*_split_key(key), rows={})

    def spec(
        self, model: str, version: int | None = None, rows: dict[Any, Changes] | None = None
    ) -> RunnerSpec:
        """The spec in force for `version` of `model` (for the model when version is None)."""
        if rows is None:
            rows = self._rows(model)
        spec = self.base
        layers = [self.layers.get("*"), self.layers.get(model), rows.get((model, 0))]
        if version is not None:
            layers.insert(2, self.layers.get(f"{model}:{version}"))
            layers.append(rows.get((model, version)))
        for changes in layers:
            if changes:
                spec = spec.with_changes(changes)
        return spec

    def specs(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], RunnerSpec]:
        """The spec in force for each (model, version), with one read of the store."""
        rows = self._rows(None)
        return {(m, v): self.spec(m, v, rows) for m, v in wanted}

    def overview(self, model: str, routed: Iterable[int]) -> list[tuple[int | None, RunnerSpec]]:
        """The model's spec (version None), then each routed or specially set version's."""
        rows = self._rows(model)
        numbers = sorted({*routed, *(v for (_, v) in rows if v)})
        return [(None, self.spec(model, None, rows))] + [
            (n, self.spec(model, n, rows)) for n in numbers
        ]

    def stored(self, model: str) -> dict[int, Changes]:
        """What the store sets for the model (0) and its versions."""
        return {version: changes for (_, version), changes in self._rows(model).items()}

    def change(
        self, model: str, version: int | None, changes: Changes, user: str, reason: str = ""
    ) -> RunnerSpec:
        """Set fields of the model's (or one version's) spec; checked, audited, pushed."""
        number = version or 0
        with self.engine.begin() as conn:
            before = conn.execute(
                sa.select(runner_specs.c.spec).where(
                    (runner_specs.c.model == model) & (runner_specs.c.version == number)
                )
            ).scalar()
            merged = {**(before or {}), **changes}
            self.spec(model, version, {(model, number): merged})  # raises InvalidRunnerSpec if bad
            if changes.get("runtime") == "compiled":
                check_compiled(conn, model, version)
            now = datetime.now(UTC)
            key = {"model": model, "version": number}
            values = {"spec": merged, "updated_at": now, "updated_by": user, "reason": reason}
            update_or_insert(conn, runner_specs, key, values)
            target = f"runners:{model}" + (f":{version}" if version else "")
            write_audit(conn, user, "runners", target, before, merged, reason)
            bump_changes(conn, "runners")
        return self.spec(model, version)

    def _rows(self, model: str | None) -> dict[tuple[str, int], Changes]:
        query = sa.select(runner_specs.c.model, runner_specs.c.version, runner_specs.c.spec)
        if model is not None:
            query = query.where(runner_specs.c.model == model)
        with self.engine.connect() as conn:
            return {(m, v): dict(spec) for m, v, spec in conn.execute(query).all()}


def check_compiled(conn: Connection, model: str, version: int | None) -> None:
    """Refuse `runtime = compiled` for a version (or, for the whole model, any version)
    whose compiled artifact did not agree with the original."""
    query = (
        sa.select(versions)
        .join(models, models.c.id == versions.c.model_id)
        .where(models.c.name == model)
        .order_by(versions.c.number)
    )
    if version is not None:
        query = query.where(versions.c.number == version)
    for row in conn.execute(query).all():
        record = VersionRecord.from_row(model, row)
        if not record.compiled_agreed:
            raise CompiledRuntimeRefused(model, record.number, record.compiled_reason())


def _split_key(key: str) -> tuple[str, int | None]:
    model, sep, version = key.rpartition(":")
    if not sep:
        return key, None
    if not version.isdigit():
        raise ConfigError(f'[runners."{key}"]: write MODEL or MODEL:VERSION (a number).')
    return model, int(version)
