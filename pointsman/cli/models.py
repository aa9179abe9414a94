"""`pointsman register | models | versions | show | compile`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import cell, console, err_console, print_json, table
from pointsman.errors import InvalidArtifact
from pointsman.registry import Submission, VersionRecord
from pointsman.registry.lineage import current_user
from pointsman.registry.register import split_entrypoint
from pointsman.runtimes import FORMATS


def _pairs(values: tuple[str, ...], option: str, numeric: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArtifact(f"{option} takes NAME=VALUE, got {item!r}.")
        if numeric:
            try:
                out[key] = float(value)
            except ValueError as exc:
                raise InvalidArtifact(f"{option} {key} must be a number, got {value!r}.") from exc
        else:
            out[key] = value
    return out


@click.command()
@click.argument("model")
@click.argument("artifact")
@click.option(
    "--training-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV or Parquet sample of the training data (features, and the target).",
)
@click.option("--target", help="Label column of the training data, left out of the inputs.")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Artifact format (default: detected)."
)
@click.option("--metric", multiple=True, metavar="NAME=VALUE", help="A metric, e.g. auc=0.91.")
@click.option("--param", multiple=True, metavar="NAME=VALUE", help="A training parameter.")
@click.option("--note", default="", help="Free text kept with the version.")
@click.option(
    "--trust",
    multiple=True,
    metavar="TYPE",
    help="A type in a .skops file that skops does not trust by default and you do "
    "(the refusal lists them); kept with the version and enforced at every load.",
)
@click.option(
    "--url",
    help="Register through the server at this URL (e.g. https://pointsman.example): the "
    "files are uploaded, and the server stores and checks them (no access to the store needed).",
)
@click.option(
    "--key",
    envvar="POINTSMAN_KEY",
    help="API key for --url with register:MODEL or admin (default: $POINTSMAN_KEY).",
)
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=True,
    help="Compile a scikit-learn model to ONNX and check it against the original on the "
    "training data (default; about a second). --no-compile: later, with `pointsman compile`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@pass_context
def register(
    ctx: Context,
    model: str,
    artifact: str,
    training_data: Path | None,
    target: str | None,
    fmt: str | None,
    metric: tuple[str, ...],
    param: tuple[str, ...],
    note: str,
    trust: tuple[str, ...],
    url: str | None,
    key: str | None,
    compile_: bool,
    as_json: bool,
) -> None:
    """Store ARTIFACT as a new version of MODEL.

    ARTIFACT is a scikit-learn file (.joblib/.pkl), a .skops file, an .onnx file, an MLflow
    model folder, or FILE.py:ClassName for a Python class with predict().
    """
    path, entrypoint = split_entrypoint(artifact)
    if not path.exists():
        raise InvalidArtifact(f"{path} does not exist.")
    if path.suffix in (".pkl", ".pickle", ".joblib") or fmt == "sklearn":
        err_console.print(
            "[yellow]note:[/yellow] pickle-based files run code when loaded; register only "
            "files you trust (.skops and .onnx are the safe formats). The audit log records "
            "that this one is trusted because you registered it."
        )
    sub = Submission(
        model=model,
        path=path,
        format=fmt,
        entrypoint=entrypoint,
        training_data=training_data,
        target=target,
        params=_pairs(param, "--param", numeric=False),
        metrics=_pairs(metric, "--metric", numeric=True),
        note=note,
        user=current_user(),
        trusted_types=trust,
        compile=compile_,
    )
    if url:
        # httpx and the packing only for --url: `pointsman models` stays light to start.
        from pointsman.cli.upload import register_remote

        data, created = register_remote(url, key, sub)
    else:
        record, created = ctx.project().registry.register(sub)
        data = record.to_json()
    if as_json:
        print_json({**data, "created": created})
        return
    number, sha = data["version"], str(data["sha256"])
    where = f" on {url}" if url else ""
    if created:
        console.print(
            f"Registered [bold]{model}[/bold] version [bold]{number}[/bold]{where} "
            f"({data['format']}, sha256 {sha[:12]})"
        )
    else:
        console.print(
            f"Same artifact as [bold]{model}[/bold] version [bold]{number}[/bold]{where} "
            f"(sha256 {sha[:12]}); nothing new stored."
        )
    console.print(f"Deploy it with: pointsman deploy {model} {number}")


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def list_models(ctx: Context, as_json: bool) -> None:
    """List models, their versions and what is deployed."""
    reader = ctx.fast_read()
    summaries = reader.models() if reader else None
    if summaries is None:
        summaries = ctx.project().registry.list_models()
    if as_json:
        print_json([s.to_json() for s in summaries])
        return
    if not summaries:
        console.print("No models yet. Register one with: pointsman register NAME MODEL_FILE")
        return
    rows = [
        [s.name, s.versions, s.latest, s.deployed, s.route_revision, s.created_at]
        for s in summaries
    ]
    table(None, ["model", "versions", "latest", "deployed", "route rev", "created"], rows)


@click.command("versions")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def list_versions(ctx: Context, model: str, as_json: bool) -> None:
    """List the versions of MODEL."""
    reader = ctx.fast_read()
    records = reader.versions(model) if reader else None
    route = reader.route(model) if reader and records is not None else None
    if records is None:
        project = ctx.project()
        records = project.registry.list_versions(model)
        route = project.routes.find(model)
    if as_json:
        print_json([_summary(r) for r in records])
        return
    deployed = set(route.versions) if route else set()
    rows = [
        [
            r.number,
            "yes" if r.number in deployed else "",
            r.format,
            r.sha256[:12],
            _metrics(r),
            r.created_by,
            r.created_at,
            r.note,
        ]
        for r in records
    ]
    table(
        f"{model}",
        ["version", "deployed", "format", "sha256", "metrics", "by", "created", "note"],
        rows,
    )


def _summary(r: VersionRecord) -> dict[str, Any]:
    data = r.to_json()
    data.pop("profile", None)
    data.pop("input_example", None)
    return data


def _metrics(r: VersionRecord) -> str:
    metrics = r.lineage.get("metrics") or {}
    return ", ".join(f"{k}={cell(v)}" for k, v in metrics.items())


@click.command("show")
@click.argument("model")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def show(ctx: Context, model: str, version: str, as_json: bool) -> None:
    """Show one version: signature, profile, lineage."""
    project = ctx.project()
    r = project.registry.get_version(model, version)
    if as_json:
        print_json(r.to_json())
        return
    lin = r.lineage
    console.print(f"[bold]{model}[/bold] version [bold]{r.number}[/bold]")
    facts: list[list[Any]] = [
        ["format", f"{r.format} ({r.platform})"],
        ["artifact", f"{r.artifact}"],
        ["sha256", r.sha256],
        ["created", f"{cell(r.created_at)} by {r.created_by}"],
        ["note", r.note or "-"],
        ["python", lin.get("python")],
        ["packages", ", ".join(f"{k} {v}" for k, v in (lin.get("packages") or {}).items())],
        ["git", _git(lin.get("git"))],
        ["training data", _data(lin.get("training_data"))],
        ["params", ", ".join(f"{k}={v}" for k, v in (lin.get("params") or {}).items()) or "-"],
        ["metrics", _metrics(r) or "-"],
        ["classes", cell(list(r.signature.classes)) if r.signature.classes else "-"],
        *compiled_facts(r),
    ]
    table(None, ["", ""], facts)
    features = (r.profile or {}).get("features", {})
    rows = [
        [c.name, c.type, "yes" if c.nullable else "", _profile(features.get(c.name))]
        for c in r.signature.inputs
    ]
    table("signature and reference profile", ["column", "type", "nullable", "training data"], rows)


def compiled_facts(r: VersionRecord) -> list[list[Any]]:
    """The compiled runtime's lines of `show`: verdict, figures, or why the original runs."""
    c = r.compiled
    if c is None:
        return [["compiled", f"not compiled (run `pointsman compile {r.model} {r.number}`)"]]
    if r.compiled_agreed:
        verdict = "yes: agreed with the original, used by runtime auto"
    else:
        verdict = f"no: runs the original, because {c.get('reason') or 'not compiled'}"
    rows: list[list[Any]] = [["compiled", verdict]]
    if c.get("label_agreement") is not None:
        diff = c.get("max_probability_diff")
        rows.append(
            [
                "compiled check",
                f"labels {c['label_agreement']:.2%} identical, max probability difference "
                f"{'-' if diff is None else f'{diff:.3g}'} (tolerance {c.get('tolerance', 0):g}), "
                f"on {c.get('rows')} reference rows",
            ]
        )
    if c.get("artifact"):
        rows.append(
            [
                "compiled artifact",
                f"{c['artifact']} ({c.get('precision')}, {c.get('converter')}, "
                f"{c.get('seconds', 0):.2f} s to compile and check)",
            ]
        )
    return rows


@click.command("compile")
@click.argument("model")
@click.argument("version")
@click.option(
    "--training-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The training data to check against (default: the reference sample kept at "
    "register; needed for versions registered before compiling existed).",
)
@click.option("--target", help="Label column of --training-data, left out of the inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the compile report as JSON.")
@pass_context
def compile_version(
    ctx: Context,
    model: str,
    version: str,
    training_data: Path | None,
    target: str | None,
    as_json: bool,
) -> None:
    """Compile VERSION of MODEL to ONNX and check it against the original, row for row.

    The compiled runtime is used (runtime auto) only if every label is identical and every
    probability within 1e-5 on the reference sample; otherwise the version runs the
    original and `pointsman show` says why. Running servers pick the result up.
    """
    project = ctx.project()
    number = project.registry.get_version(model, version).number
    record = project.registry.compile(model, number, current_user(), training_data, target)
    if as_json:
        print_json({"model": model, "version": number, "compiled": record.compiled})
        return
    table(f"{model} version {number}", ["", ""], compiled_facts(record))


def _git(info: Any) -> str:
    if not info:
        return "-"
    return str(info["commit"])[:12] + (" (uncommitted changes)" if info.get("dirty") else "")


def _data(info: Any) -> str:
    if not info:
        return "-"
    shape = f"{info['rows']} rows, {len(info['columns'])} columns"
    return f"{info['file']}: {shape}, sha256 {info['sha256'][:12]}"


def _profile(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    nulls = f", nulls {p['null_rate']:.1%}" if p.get("null_rate") else ""
    if p["kind"] == "numeric":
        if not p.get("count"):
            return "no values" + nulls
        return f"{p['min']:.4g} … {p['max']:.4g}, mean {p['mean']:.4g} ± {p['std']:.3g}{nulls}"
    cats = sorted(p["categories"].items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} {v:.0%}" for k, v in cats[:5])
    more = f" (+{p['n_categories'] - 5} more)" if p["n_categories"] > 5 else ""
    return f"{shown}{more}{nulls}"


COMMANDS = [register, list_models, list_versions, show, compile_version]
