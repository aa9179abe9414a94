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
from pathlib import Path
from typing import Any

import pytest

from pointsman.auth import KeyBook
from pointsman.project import Project
from tests.api.conftest import register_churn
from tests.conftest import Server, skip_or_fail

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


def test_console_end_to_end(
    browser: Any,
    project: Project,
    churn_files: list[tuple[Path, Path]],
    shots: Path,
    request: pytest.FixtureRequest,
) -> None:
    full = request.node.callspec.params["database_url"] == "sqlite"
    look = Look(shots, full)
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "test", "first")
    admin, _ = KeyBook(project.engine).create("ann", ["admin"], "test")
    reader, _ = KeyBook(project.engine).create("viewer", ["read:churn"], "test")
    server = Server(project.settings.project_path())
    try:
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
        refused = context.request.post(
            server.url + "/ui/models/churn/about", form={"description": "x"}
        )
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
    finally:
        server.stop()
