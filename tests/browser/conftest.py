"""Fixtures for the browser checks: one JupyterLab server and one Chromium per session."""

from __future__ import annotations

import os

import pytest

from tests.browser.lab import ARTIFACTS, CHROMIUM_FLAGS, LabServer, find_chromium

INSTALL_HINT = "install Debian's Chromium with: sudo apt-get install chromium"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Chromium is required in CI but was not found; {INSTALL_HINT}")
        pytest.skip(f"browser checks need Chromium; {INSTALL_HINT}")
    return path


@pytest.fixture(scope="session")
def lab(tmp_path_factory, chromium_path):
    server = LabServer(tmp_path_factory.mktemp("lab"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def instructor_lab(tmp_path_factory, chromium_path):
    """The teacher's JupyterLab (make lab-instructor): notebooks/ with nbgrader."""
    server = LabServer(tmp_path_factory.mktemp("lab-instructor"), learner=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(chromium_path, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_FLAGS,  # the fresh profile above is its --user-data-dir
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(60_000)
        yield context
        context.close()


@pytest.fixture
def page(browser, request):
    """A fresh tab; on failure its screenshot and console log are saved."""
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    page.console_log = console  # type: ignore[attr-defined]
    yield page
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        shot = ARTIFACTS / f"{name}.png"
        log = ARTIFACTS / f"{name}.console.log"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as exc:  # the page may have crashed; keep the log anyway
            console.append(f"[screenshot failed] {exc}")
        log.write_text("\n".join(console))
        print(f"\nscreenshot: {shot}\nconsole log: {log}")
    page.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_report_header(config):
    path = find_chromium()
    return f"browser checks: chromium {('at ' + path) if path else 'not found (' + INSTALL_HINT + ')'}"
