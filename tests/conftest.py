"""Shared pytest setup: integration tests need a real ComfyUI and are skipped, with one
clear reason, when none is found (see devkit/harness/comfy.py for how it is found)."""

import pytest

from devkit.harness.comfy import find_comfyui


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
