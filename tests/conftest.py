"""Shared pytest setup. Integration tests (marker ``integration``) need a real ComfyUI, found as the driver finds
one (devkit/harness/comfy.py): ``COMFYUI_DIR``/``COMFYUI_PYTHON``, else the managed install.

* Nothing installed: they are skipped, and the summary says why in one line (also with ``-q``).
* ``COMFYUI_DIR``/``COMFYUI_PYTHON`` set but wrong: they fail, naming the variable.
* Under ``CI=true`` a skipped integration test is a failure: CI must run them all.
* The summary counts the integration tests that ran.

Browser tests (marker ``browser``) get a headless Chromium from the ``browser`` fixture
(devkit/harness/browser.py); without one they are skipped with the reason, except under
``CI=true``, where a missing browser fails them."""

import os
import signal

import pytest

from devkit.harness.browser import find_chromium, launch
from devkit.harness.comfy import ComfyMisconfigured, find_comfyui

# A shell without job control starts background commands with SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler (children inherit the ignore too): the Ctrl-C tests would test nothing. Restore what a
# terminal gives, however the suite is started; children get SIGINT's default action at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_STATE: dict = {}


def _found() -> tuple[object, str, str | None]:
    if "found" not in _STATE:
        try:
            install, reason = find_comfyui()
            _STATE["found"] = (install, reason, None)
        except ComfyMisconfigured as exc:
            _STATE["found"] = (None, str(exc), str(exc))
    return _STATE["found"]


def pytest_collection_modifyitems(config, items):
    install, reason, misconfigured = _found()
    if install is not None:
        return
    mark = (pytest.mark.usefixtures("_comfy_misconfigured") if misconfigured else
            pytest.mark.skip(reason=f"integration test needs a real ComfyUI: {reason}"))
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(mark)


@pytest.fixture
def _comfy_misconfigured():
    pytest.fail(f"integration test cannot find its ComfyUI: {_found()[2]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if "integration" not in item.keywords or not (report.skipped or report.when == "call"):
        return
    counts = _STATE.setdefault("integration", {"ran": 0, "skipped": 0})
    if report.skipped and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"integration test skipped under CI=true (CI must run them all): {report.longrepr}"
        counts["skipped"] += 1
    elif report.skipped:
        counts["skipped"] += 1
    else:
        counts["ran"] += 1


def pytest_report_header(config):
    install, reason, _ = _found()
    if install is None:
        return f"ComfyUI: not found, integration tests skipped ({reason})"
    return f"ComfyUI: {install.root} {install.version} ({install.origin}; python {install.python})"


def pytest_terminal_summary(terminalreporter):
    counts = _STATE.get("integration", {"ran": 0, "skipped": 0})
    line = f"integration tests: {counts['ran']} ran, {counts['skipped']} skipped"
    install, reason, _ = _found()
    if counts["skipped"] and install is None:
        line += f" (no ComfyUI: {reason})"
    terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (the system's, driven by Playwright), closed at the end."""
    path, reason = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(f"browser test needs Chromium: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright, path)
        try:
            yield chromium
        finally:
            chromium.close()
