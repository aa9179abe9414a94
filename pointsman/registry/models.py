"""The registry: models and their versions in the store, artifacts in the artifact store."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pointsman.errors import InvalidArtifact, ModelNotFound, VersionNotFound
from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.register import (
    COMPILED_FILE,
    SAMPLE_FILE,
    CompileJob,
    Prepare,
    Submission,
    audit_detail,
    check_model_name,
    compile_json,
    prepare,
)
from pointsman.registry.summary import ModelSummary
from pointsman.registry.versions import VersionRecord
from pointsman.store.audit import write_audit
from pointsman.store.changes import notify_change
from pointsman.store.tables import changes, models, routes, versions

# Where an on-demand compile runs: in this process, or in a child under a runner's limits.
CompileRun = Callable[[CompileJob, Path], dict[str, Any]]


def _compiled_summary(compiled: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the audit log keeps of a compile: the verdict and its figures."""
    if not compiled:
        return None
    keys = ("agreed", "label_agreement", "max_probability_diff", "rows", "sha256")
    return {k: compiled.get(k) for k in keys}


def bump_changes(conn: Connection, kind: str) -> None:
    """Tell every server that routes, versions or runner specs changed (on commit)."""
    conn.execute(changes.update().where(changes.c.id == 1).values(counter=changes.c.counter + 1))
    notify_change(conn, kind)  # PostgreSQL: pushed now; the counter stays for pollers


def read_change_counter(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(changes.c.counter)).scalar_one())


class Registry:
    """Models, versions and their artifacts."""

    def __init__(
        self,
        engine: Engine,
        artifacts: ArtifactStore,
        prepare: Prepare = prepare,
        compile_run: CompileRun = compile_json,
        compile_at_register: bool = True,
    ) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self.prepare = prepare  # loads and smoke-tests a submission (in a runner's limits)
        self.compile_run = compile_run  # loads and compiles a stored version (the same)
        self.compile_at_register = compile_at_register  # False: every register is --no-compile

    def model_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars())

    def model_id(self, conn: Connection, name: str) -> int:
        """The id of model `name`; ModelNotFound lists the known ones."""
        found = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if found is None:
            raise ModelNotFound(name, self.model_names())
        return int(found)

    def list_models(self) -> list[ModelSummary]:
        latest_route = (
            sa.select(routes.c.model_id, sa.func.max(routes.c.revision).label("revision"))
            .group_by(routes.c.model_id)
            .subquery()
        )
        counts = (
            sa.select(
                versions.c.model_id,
                sa.func.count().label("n"),
                sa.func.max(versions.c.number).label("latest"),
            )
            .group_by(versions.c.model_id)
            .subquery()
        )
        query = (
            sa.select(models, counts.c.n, counts.c.latest, routes.c.revision, routes.c.spec)
            .outerjoin(counts, counts.c.model_id == models.c.id)
            .outerjoin(latest_route, latest_route.c.model_id == models.c.id)
            .outerjoin(
                routes,
                (routes.c.model_id == models.c.id) & (routes.c.revision == latest_route.c.revision),
            )
            .order_by(models.c.name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [ModelSummary.from_row(r) for r in rows]

    def list_versions(self, model: str) -> list[VersionRecord]:
        with self.engine.connect() as conn:
            model_id = self.model_id(conn, model)
            rows = conn.execute(
                sa.select(versions)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.number)
            ).all()
        return [VersionRecord.from_row(model, r) for r in rows]

    def version_numbers(self, model: str) -> list[int]:
        with self.engine.connect() as conn:
            model_id = self.model_id(conn, model)
            query = sa.select(versions.c.number).where(versions.c.model_id == model_id)
            return sorted(int(n) for n in conn.execute(query).scalars())

    def find_version(self, model: str, number: int) -> VersionRecord | None:
        with self.engine.connect() as conn:
            model_id = self.model_id(conn, model)
            row = conn.execute(
                sa.select(versions).where(
                    (versions.c.model_id == model_id) & (versions.c.number == number)
                )
            ).first()
        return None if row is None else VersionRecord.from_row(model, row)

    def get_version(self, model: str, number: int | str) -> VersionRecord:
        """Version `number` of `model`; VersionNotFound lists the versions there are."""
        try:
            parsed = int(number)
        except (TypeError, ValueError):
            parsed = -1
        found = self.find_version(model, parsed) if parsed >= 0 else None
        if found is None:
            self.model_names()  # ModelNotFound first when the model itself is unknown
            raise VersionNotFound(model, str(number), [str(n) for n in self.version_numbers(model)])
        return found

    def artifact_path(self, version: VersionRecord) -> Path:
        """The verified local path of a version's artifact (downloaded first if need be)."""
        return self.artifacts.verified(version.artifact, version.sha256)

    def register(self, sub: Submission) -> tuple[VersionRecord, bool]:
        """Store a new version; the same bytes again return the existing one (created=False)."""
        check_model_name(sub.model)
        sha, rel = self.artifacts.put(sub.path)
        existing = self._find_by_sha(sub.model, sha)
        if existing is not None:
            return existing, False
        if not self.compile_at_register:
            sub = replace(sub, compile=False)
        with tempfile.TemporaryDirectory(dir=self.artifacts.work_root()) as workdir:
            prepared = self.prepare(sub, self.artifacts.path_of(rel), Path(workdir))
            compiled = self._keep_compiled(prepared.compiled, Path(workdir))
        # Only a version that loaded is uploaded; before its row exists, so no row ever
        # names an artifact that other servers cannot fetch.
        self.artifacts.publish(rel)
        now = datetime.now(UTC)
        for _attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    model_id = self._ensure_model(conn, sub.model, sub.user, now)
                    number = 1 + int(
                        conn.execute(
                            sa.select(sa.func.coalesce(sa.func.max(versions.c.number), 0)).where(
                                versions.c.model_id == model_id
                            )
                        ).scalar_one()
                    )
                    conn.execute(
                        versions.insert().values(
                            model_id=model_id,
                            number=number,
                            sha256=sha,
                            format=prepared.format,
                            artifact=rel,
                            entrypoint=prepared.entrypoint,
                            signature=prepared.signature.to_json(),
                            profile=prepared.profile,
                            lineage=prepared.lineage,
                            input_example=prepared.input_example,
                            compiled=compiled,
                            note=sub.note,
                            created_at=now,
                            created_by=sub.user,
                        )
                    )
                    write_audit(
                        conn,
                        sub.user,
                        "register",
                        f"model:{sub.model}",
                        None,
                        {
                            "version": number,
                            "sha256": sha,
                            "format": prepared.format,
                            "artifact": rel,
                            "note": sub.note,
                            "compiled": _compiled_summary(compiled),
                        },
                        "; ".join(d for d in (sub.reason, audit_detail(prepared.format)) if d),
                    )
                    bump_changes(conn, "versions")
                break
            except IntegrityError:
                # Another registration took the number (or stored the same bytes): look again.
                existing = self._find_by_sha(sub.model, sha)
                if existing is not None:
                    return existing, False
        return self.get_version(sub.model, number), True

    def compile(
        self,
        model: str,
        number: int,
        user: str,
        training_data: Path | None = None,
        target: str | None = None,
    ) -> VersionRecord:
        """Compile a stored version again (`pointsman compile`), against its kept reference
        sample or `training_data` given now (its `target` column left out); stored, audited."""
        version = self.get_version(model, number)
        kept = (version.compiled or {}).get("sample")
        if training_data is not None:
            sample = training_data
        elif kept:
            sample, target = self.artifacts.verified(kept["artifact"], kept["sha256"]), None
        else:
            raise InvalidArtifact(
                f"{model} version {number} was registered without a kept reference sample: "
                "give the data it was trained on with --training-data (and --target)."
            )
        job = CompileJob(
            model,
            version.format,
            self.artifact_path(version),
            tuple(version.lineage.get("trusted_types") or ()),
            [c.to_json() for c in version.signature.inputs],
            sample,
            target,
        )
        with tempfile.TemporaryDirectory(dir=self.artifacts.work_root()) as workdir:
            compiled = self._keep_compiled(self.compile_run(job, Path(workdir)), Path(workdir))
        with self.engine.begin() as conn:
            model_id = self.model_id(conn, model)
            conn.execute(
                versions.update()
                .where((versions.c.model_id == model_id) & (versions.c.number == number))
                .values(compiled=compiled)
            )
            write_audit(
                conn, user, "compile", f"model:{model}:{number}",
                _compiled_summary(version.compiled), _compiled_summary(compiled),
                compiled.get("reason", ""),
            )  # fmt: skip
            bump_changes(conn, "versions")
        return self.get_version(model, number)

    def _keep_compiled(self, report: dict[str, Any] | None, workdir: Path) -> dict[str, Any]:
        """The compile report with its files moved into the artifact store (path, sha256)."""
        out = dict(report or {"agreed": False, "reason": "not compiled"})
        onnx, sample = workdir / COMPILED_FILE, workdir / SAMPLE_FILE
        if onnx.exists():
            sha, rel = self.artifacts.put(onnx)
            self.artifacts.publish(rel)
            out["artifact"], out["sha256"] = rel, sha
        if sample.exists():
            sha, rel = self.artifacts.put(sample)
            self.artifacts.publish(rel)
            out["sample"] = {"artifact": rel, "sha256": sha}
        return out

    def _find_by_sha(self, model: str, sha: str) -> VersionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(versions)
                .join(models, models.c.id == versions.c.model_id)
                .where((models.c.name == model) & (versions.c.sha256 == sha))
            ).first()
        return None if row is None else VersionRecord.from_row(model, row)

    def _ensure_model(self, conn: Connection, name: str, user: str, now: datetime) -> int:
        found = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if found is not None:
            return int(found)
        result = conn.execute(models.insert().values(name=name, created_at=now, created_by=user))
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the store returned no id for the new model")
        return int(key[0])
