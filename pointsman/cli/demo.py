"""`pointsman demo`: a project with two churn model versions, deployed and served."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
import uvicorn

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console
from pointsman.demo.churn import TARGET, train_versions
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.registry.lineage import current_user

EXAMPLE = (
    '{"rows": [{"tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 31, '
    '"plan": "premium", "contract": "monthly", "region": "north"}]}'
)


@click.command()
@click.argument(
    "folder", type=click.Path(file_okay=False, path_type=Path), default="pointsman-demo"
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--no-serve", is_flag=True, help="Set everything up, print the calls, do not serve.")
@pass_context
def demo(ctx: Context, folder: Path, port: int, host: str, no_serve: bool) -> None:
    """Create FOLDER with a churn model in two versions, deploy v1 and serve it."""
    path, _ = init_project(folder)
    settings = Context(path, ctx.debug).settings(host=host, port=port)
    with open_project(settings) as project:  # closed before serving starts
        numbers, key = _set_up(project, path)
    _print_calls(path, host, port, numbers, key, serving=not no_serve)
    if no_serve:
        return
    uvicorn.run(build_app(settings), host=host, port=port, log_level="warning", access_log=False)


def _set_up(project: Project, path: Path) -> tuple[list[int], str]:
    """Register the two churn versions, deploy the first; their numbers and the demo key."""
    with console.status("Training two churn models on synthetic data…"):
        trained = train_versions(path / "models")
    user = current_user()
    numbers = []
    for t in trained:
        record, _created = project.registry.register(
            Submission(
                model="churn",
                path=t.path,
                training_data=t.training_data,
                target=TARGET,
                params=t.params,
                metrics=t.metrics,
                note=t.note,
                user=user,
            )
        )
        numbers.append(record.number)
        metrics = ", ".join(f"{k}={v}" for k, v in t.metrics.items())
        console.print(f"Registered churn version {record.number}: {t.note} ({metrics})")
    route = project.routes.deploy("churn", numbers[0], user, "demo: start with the baseline").after
    console.print(f"Deployed churn version {route.primary} (route revision {route.revision})")
    key = _demo_key(project, user)
    return numbers, key


def _program() -> str:
    """How the user can call pointsman again: by name if it is on PATH, else by its path."""
    argv0 = Path(sys.argv[0])
    on_path = shutil.which("pointsman")
    if argv0.name != "pointsman":
        return f"{Path(sys.executable).name} -m pointsman"
    if on_path and Path(on_path).resolve() == argv0.resolve():
        return "pointsman"
    return os.path.relpath(argv0)


def _demo_key(project: Project, user: str) -> str:
    """An admin key named `demo`, new on every run (a rerun rotates it)."""
    book = KeyBook(project.engine)
    if any(r.name == "demo" for r in book.list_keys(include_revoked=False)):
        return book.rotate("demo", user)[0]
    return book.create("demo", ["admin"], user)[0]


def _print_calls(
    path: Path, host: str, port: int, numbers: list[int], key: str, serving: bool
) -> None:
    base = f"http://{host}:{port}"
    auth = '-H "Authorization: Bearer $POINTSMAN_KEY"'
    other = numbers[-1]
    prog = f"{_program()} --project {os.path.relpath(path)}"
    console.print(f"\nProject: {path}")
    if serving:
        console.print(f"Serving on {base}  (Ctrl-C to stop)\n", style="bold")
    else:
        console.print(f"Serve it with: {prog} serve --port {port}\n", style="bold", markup=False)
    console.print(f"API key (admin, named demo; shown once): {key}", markup=False, soft_wrap=True)
    console.print("Try:", style="bold")
    lines = [
        f"export POINTSMAN_KEY={key}",
        f"curl -s {base}/v1/models/churn/predict {auth} -H 'Content-Type: application/json' "
        f"-d '{EXAMPLE}'",
        f"curl -s {base}/v1/models/churn/versions/{other}/predict {auth} -d '{EXAMPLE}'",
        f"curl -s {base}/invocations {auth} -H 'Content-Type: application/json' "
        """-d '{"dataframe_split": {"columns": ["tenure_months", "monthly_charges", """
        """"support_calls", "age", "plan", "contract", "region"], "data": """
        """[[3, 99.5, 4, 31, "premium", "monthly", "north"]]}}'""",
        f"curl -s {base}/v2/models/churn {auth}",
        f"curl -s {base}/readyz",
        f"curl -s {base}/metrics {auth} | grep '^pointsman_inference_requests'",
        f"{prog} versions churn",
        f"{prog} predict churn '{EXAMPLE}'",
        f"{prog} deploy churn {other}",
    ]
    for line in lines:
        console.print("  " + line, soft_wrap=True, markup=False)
    console.print()


COMMANDS = [demo]
