"""The console in a real browser: Debian's chromium driven by Playwright, against
`pointsman serve` on loopback, on each store. Screenshots of every page at 1280x800 go to a
temporary folder (and to $POINTSMAN_SCREENSHOT_DIR when set); axe-core checks every page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pointsman.auth import KeyBook
from pointsman.auth.audit import read_audit
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.routing.changes import describe_changes
from pointsman.settings import load_settings
from tests.api.conftest import register_churn
from tests.conftest import Server, fresh_postgres_database, skip_or_fail

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing; None says why not."""
    if Path(CHROMIUM).exists():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "chromium is not installed and apt-get cannot run here (not root)"
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr[-300:]}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium, for this module (the only one using it): Playwright's sync API
    holds an event loop while it runs, which the async tests of later modules need free."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install -e '.[dev]')")
    why = install_chromium()
    if why is not None:
        skip_or_fail(why)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("POINTSMAN_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Console:
    """A project on one store served by `pointsman serve`: churn v1 deployed and v2
    registered; retention v1 deployed (for the deploy flow, apart from churn's steps)."""

    project: Project
    server: Server
    admin: str
    reader: str
    is_full: bool  # the run that also checks axe-core and takes screenshots


# The console's upload limit in these tests: churn's model file and training data fit under it.
UPLOAD_LIMIT = 384 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_stores: dict[str, str],
    churn_files: list[tuple[Path, Path]],
) -> Iterator[Console]:
    """One served project per store for this module's tests (a server takes seconds to start)."""
    folder = tmp_path_factory.mktemp("browser")
    if request.param == "sqlite":
        shutil.copyfile(migrated_stores["sqlite"], folder / "pointsman.db")
        url = f"sqlite:///{folder / 'pointsman.db'}"
    else:
        url = fresh_postgres_database(request, migrated_stores["postgresql"])
    project_dir, _ = init_project(folder / "project", url)
    with (project_dir / "pointsman.toml").open("a") as toml:
        toml.write(f"startup_wait_s = 30\nmax_upload_bytes = {UPLOAD_LIMIT}\n")
    project = open_project(load_settings(project_dir))
    project.registry.compile_at_register = False
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "test", "first")
    retention, _ = project.registry.register(
        Submission(model="retention", path=churn_files[0][0], training_data=churn_files[0][1],
                   target="churned", user="test")
    )  # fmt: skip
    project.routes.deploy("retention", retention.number, "test", "first")
    admin, _ = KeyBook(project.engine).create("ann", ["admin"], "test")
    reader, _ = KeyBook(project.engine).create("viewer", ["read:churn"], "test")
    server = Server(project_dir)
    try:
        yield Console(project, server, admin, reader, request.param == "sqlite")
    finally:
        server.stop()
        project.close()


def check_axe(page: Any) -> None:
    """No serious or critical axe-core violation on the page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"


class Look:
    """axe-core and a screenshot of each page, on one store's run only (they do not depend on
    the store, and each costs about a second)."""

    def __init__(self, shots: Path, enabled: bool) -> None:
        self.shots, self.enabled = shots, enabled

    def __call__(self, page: Any, name: str) -> None:
        if self.enabled:
            check_axe(page)
            page.screenshot(path=str(self.shots / f"{name}.png"))


def test_console_end_to_end(browser: Any, console: Console, shots: Path) -> None:
    full = console.is_full
    look = Look(shots, full)
    server, admin, reader = console.server, console.admin, console.reader
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    # Sign in; the cookie is HttpOnly and SameSite=Strict.
    page.goto(server.url + "/ui/models")
    look(page, "signin")
    page.fill("#key", admin)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/models$"))
    cookie = next(c for c in context.cookies() if c["name"] == "pointsman_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    look(page, "catalogue")
    # Find the model, open its entry.
    page.fill("#q", "churn")
    page.press("#q", "Enter")
    page.click("a[href='/ui/models/churn']")
    assert "Version 1 answers every request." in page.inner_text("main")
    look(page, "model")
    # The portal's curl call works when run as it is, with the key in the environment.
    page.goto(server.url + "/ui/models/churn/portal")
    look(page, "portal")
    curl = page.inner_text("#code-native-curl")
    ran = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30,
        env={**os.environ, "POINTSMAN_KEY": admin},
    )  # fmt: skip
    assert '"predictions"' in ran.stdout, ran.stdout + ran.stderr
    # Try it from the form.
    page.click("form[action$='/try'] button[type=submit]")
    page.wait_for_selector("#answer")
    assert "HTTP 200" in page.inner_text("#answer")
    look(page, "try-it")
    # The request shows on the dashboard within 5 s.
    deadline = time.monotonic() + 5
    while True:
        page.goto(server.url + "/ui/models/churn/dashboard?window=15m")
        if int(page.inner_text("#total-requests")) >= 2:
            break
        assert time.monotonic() < deadline, "the requests never reached the dashboard"
        time.sleep(0.5)
    page.wait_for_function("() => typeof Chart !== 'undefined'")
    look(page, "dashboard")
    if not full:
        context.close()
        return
    # An action: review a canary of version 2, see the diff, give a reason, confirm.
    page.goto(server.url + "/ui/models/churn/actions")
    look(page, "actions")
    page.click("button:has-text('Review canary')")
    assert "arms 1=100 → 1=95, 2=5" in page.inner_text("#changes")
    look(page, "confirm")
    page.fill("#reason", "try the new features on 5 %")
    page.click("button:has-text('Confirm')")
    assert "Revision 2 in force" in page.inner_text("#done")
    # A change without the CSRF token is refused; with it (an admin) it is saved.
    refused = context.request.post(server.url + "/ui/models/churn/about", form={"description": "x"})
    assert refused.status == 403
    page.goto(server.url + "/ui/models/churn")
    page.click("summary:has-text('Edit description')")
    page.fill("#description", "Which customers will leave next month")
    page.fill("#tags", "retention tabular")
    page.click("form[action$='/about'] button[type=submit]")
    assert "Which customers will leave" in page.inner_text("main")
    # A read-only key sees the model but may not change it.
    other = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    view = other.new_page()
    view.goto(server.url + "/ui/signin")
    view.fill("#key", reader)
    view.click("button[type=submit]")
    view.goto(server.url + "/ui/models/churn")
    assert view.locator("form[action$='/about']").count() == 0
    csrf = view.get_attribute("input[name=csrf]", "value")
    denied = other.request.post(
        server.url + "/ui/models/churn/about", form={"csrf": csrf, "description": "y"}
    )
    assert denied.status == 403 and "deploy:churn" in denied.text()
    if full:
        # The same developer describes an application and requests a key from the
        # portal; the admin approves it in the other session; the developer collects it.
        view.goto(server.url + "/ui/clients")
        for field, value in (
            ("#name", "crm"),
            ("#owner", "sales-tools"),
            ("#contact", "crm@example.com"),
            ("#purpose", "churn flags"),
        ):
            view.fill(field, value)
        view.click("button:has-text('Save client')")
        look(view, "clients")
        view.goto(server.url + "/ui/models/churn/portal")
        view.click("button:has-text('Request the key')")
        page.goto(server.url + "/ui/requests")
        look(page, "requests")
        page.fill("input[name=reason]", "known team")
        page.click("button:has-text('Approve')")
        view.goto(server.url + "/ui/requests")
        view.click("button:has-text('Create my key')")
        assert view.inner_text("#key-value").startswith("pk_")
    other.close()
    # Dark mode renders too.
    dark = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="dark", bypass_csp=True
    )
    dark.add_cookies([{**cookie}])
    dark_page = dark.new_page()
    dark_page.goto(server.url + "/ui/models/churn")
    look(dark_page, "model-dark")
    dark.close()
    context.close()


def test_deploy_flow_upload_canary_promote_rollback(
    browser: Any, console: Console, churn_files: list[tuple[Path, Path]]
) -> None:
    """A data scientist's deploy flow, each step checked on the page, in the store and in the
    server's answer: upload a version (refused when too large), canary, promote, roll back."""
    project, server = console.project, console.server
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    actions = server.url + "/ui/models/retention/actions"
    page.goto(actions)  # to sign in, and back
    page.fill("#key", console.admin)
    page.click("button[type=submit]")
    page.wait_for_url(actions)
    bearer = {"Authorization": f"Bearer {console.admin}"}

    def served_route() -> dict[str, Any]:
        answer = context.request.get(server.url + "/v1/admin/models/retention/route",
                                     headers=bearer)  # fmt: skip
        assert answer.ok, answer.text()
        route: dict[str, Any] = answer.json()
        return route

    def confirm(button: str, reason: str) -> list[str]:
        """Review an action, confirm it with a reason; what the confirmation said changes."""
        page.click(f"button:has-text('{button}')")
        said = page.locator("#changes li").all_inner_texts()
        page.fill("#reason", reason)
        page.click("button:has-text('Confirm')")
        page.wait_for_selector("#done")
        return said

    path, data = churn_files[1]
    if console.is_full:  # refusals that write nothing, whatever the store
        refuse_large_and_unexplained_uploads(page, context, actions, path)
    assert project.registry.version_numbers("retention") == [1]
    # Upload version 2 with its training data and a reason, kept in the audit log.
    page.set_input_files("#artifact", str(path))
    page.set_input_files("#training_data", str(data))
    page.fill("#target", "churned")
    page.fill("#upload-reason", "retrained on March")
    page.uncheck("#compile")  # about a second more each time; tests/registry compile
    page.click("button:has-text('Upload and register')")
    page.wait_for_selector("#done")
    assert "Registered version 2." in page.inner_text("#done")
    assert project.registry.version_numbers("retention") == [1, 2]
    registered = read_audit(project.engine, action="register", target="model:retention")
    (entry,) = [e for e in registered if e.after["version"] == 2]
    assert entry.detail.startswith("retrained on March; pickle/joblib runs code")
    assert entry.who.startswith("ann")
    # Canary of version 2: what the confirmation says is what the store and server hold.
    said = confirm("Review canary", "try it on 5 %")
    assert "arms 1=100 → 1=95, 2=5" in said
    assert "Revision 2 in force" in page.inner_text("#done")
    route = project.routes.get("retention")
    assert route.policy.canary is not None and route.policy.canary.is_running
    assert [(a.version, a.weight) for a in route.arms] == [(1, 95), (2, 5)]
    assert served_route()["revision"] == 2
    # Promote it.
    said = confirm("Review promote", "holds up")
    assert "arms 1=95, 2=5 → 2=100" in said
    route = project.routes.get("retention")
    assert route.revision == 3 and route.primary == 2
    assert route.policy.canary is not None and route.policy.canary.state == "promoted"
    # Roll back: the revision before had the canary running, so the target is its baseline
    # alone (as for the CLI and the admin API), and the confirmation shows exactly that.
    said = confirm("Review roll back", "complaints")
    history = project.routes.history("retention")
    assert len(history) == 4
    assert said == describe_changes(history[2].policy, history[3].policy)
    assert "arms 2=100 → 1=100" in said
    route = history[3]
    assert [(a.version, a.weight) for a in route.arms] == [(1, 100)]
    assert route.policy.canary is None and route.reason == "complaints"
    served = served_route()
    assert served["revision"] == 4 and served["arms"] == [{"version": 1, "weight": 100}]
    assert "Revision 4 in force" in page.inner_text("#done")
    context.close()


def refuse_large_and_unexplained_uploads(page: Any, context: Any, actions: str, path: Path) -> None:
    """Too large: the page says so and sends nothing; sent anyway, the server refuses it
    (413) before reading it. Without a reason (past the form's `required`): 400."""
    big = {"name": "huge.joblib", "mimeType": "application/octet-stream",
           "buffer": b"x" * (UPLOAD_LIMIT + 1)}  # fmt: skip
    page.set_input_files("#artifact", files=[big])
    page.fill("#upload-reason", "retrained on March")
    page.click("button:has-text('Upload and register')")
    problem = page.locator("#upload-problem")
    problem.wait_for(state="visible")
    assert "huge.joblib is 384.0 KiB" in problem.inner_text()
    assert "at most 384.0 KiB" in problem.inner_text() and page.url == actions
    csrf = page.get_attribute("input[name=csrf]", "value")
    upload = actions.replace("/actions", "/upload")
    sent = context.request.post(upload, multipart={"csrf": csrf, "reason": "x", "artifact": big})
    assert sent.status == 413 and "max_upload_bytes" in sent.text()
    # Far past it (beyond the room left for the form's other fields): refused on its
    # Content-Length (the whole body's size), before the body is read.
    bigger = {**big, "buffer": b"x" * (UPLOAD_LIMIT + 65 * 1024)}
    sent = context.request.post(upload, multipart={"csrf": csrf, "reason": "x", "artifact": bigger})
    said = re.search(r"body of (\d+) bytes exceeds the limit of (\d+)", sent.text())
    assert sent.status == 413 and said is not None
    assert int(said[1]) > len(bigger["buffer"]) and int(said[2]) == UPLOAD_LIMIT
    artifact = {"name": path.name, "mimeType": "application/octet-stream",
                "buffer": path.read_bytes()}  # fmt: skip
    sent = context.request.post(upload, multipart={"csrf": csrf, "artifact": artifact})
    assert sent.status == 400 and "Say why" in sent.text()
