"""Shared pytest setup: integration tests need a real ComfyUI and are skipped, with one
clear reason, when none is found (see tests/harness/comfy.py for how it is found).

Browser tests (marker ``browser``) get a headless Chromium from the ``browser`` fixture
(tests/harness/browser.py); without one they are skipped with the reason, except under
``CI=true``, where a missing browser fails them."""

import os

import pytest

from tests.harness.browser import find_chromium, launch
from tests.harness.comfy import find_comfyui


def pytest_collection_modifyitems(config, items):
    install, reason = find_comfyui()
    if install is not None:
        return
    skip = pytest.mark.skip(reason=f"integration test needs a real ComfyUI: {reason}")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    install, reason = find_comfyui()
    if install is None:
        return f"ComfyUI: not found, integration tests skipped ({reason})"
    return f"ComfyUI: {install.root} {install.version} (python {install.python})"


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
