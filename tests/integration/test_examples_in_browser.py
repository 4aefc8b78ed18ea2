"""Every example workflow of the pack, opened as an artist opens it: ComfyUI's own
frontend in headless Chromium (1600x1000) on a real server with only this pack and its
example inputs (what ``python -m anime_pipeline.examples`` / the managed install copy).

* each example loads with no missing node type and no console error;
* each weight-free example runs from the Run button: the queue empties, the history
  says success, and the frontend received the output (``app.nodeOutputs``);
* each example that needs models opens the missing-models dialog listing every file
  that has an official source (``directory / name``, as the dialog labels them);
* the whole graph is in the default view and clear of the minimap;
* the template browser shows this pack's examples with their titles and thumbnails.

New example files are covered without touching this test. Screenshots go to
``$AP_SHOTS_DIR`` when set (the closing notes' pictures), else into the test's tmp dir.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from anime_pipeline.examples import (
    EXAMPLE_WORKFLOWS,
    MODEL_SOURCES,
    example_model_files,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

EXAMPLES = sorted(EXAMPLE_WORKFLOWS.glob("*.json"))
WEIGHT_FREE = [p for p in EXAMPLES if not example_model_files(json.loads(p.read_text()))]
NEED_MODELS = [p for p in EXAMPLES if p not in WEIGHT_FREE]
# The missing-models dialog asks each download URL for its size; this machine has no
# route to Hugging Face, so the browser logs these two. Allowed for model examples only.
OFFLINE_NOISE = ("net::ERR_NAME_NOT_RESOLVED", "Error fetching file size")


def _shots(tmp_path: Path) -> Path:
    return Path(os.environ["AP_SHOTS_DIR"]) if os.environ.get("AP_SHOTS_DIR") else tmp_path


def _load(canvas, path: Path) -> int:
    """Load ``path`` as the template browser does; returns the console-log mark before."""
    canvas.close_dialogs()
    mark = len(canvas.log.entries)
    canvas.load(json.loads(path.read_text()), path.stem)
    canvas.page.wait_for_timeout(700)
    return mark


def _in_view(canvas) -> list[str]:
    box, mini = canvas.canvas_box(), canvas.minimap_box()
    wrong = []
    for node in canvas.node_boxes():
        right, bottom = node["x"] + node["w"], node["y"] + node["h"]
        if node["x"] < box["x"] or node["y"] < box["y"] or right > box["x"] + box["w"] or bottom > box["y"] + box["h"]:
            wrong.append(f"{node['title']} outside the view")
        elif mini and right > mini["x"] and bottom > mini["y"] and node["x"] < mini["x"] + mini["w"]:
            wrong.append(f"{node['title']} under the minimap")
    return wrong


def test_examples_are_found():
    assert WEIGHT_FREE and NEED_MODELS, "expected both weight-free and model examples"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_loads_in_view_without_errors(comfy_canvas, path, tmp_path):
    mark = _load(comfy_canvas, path)
    assert comfy_canvas.missing_node_types() == []
    needs_models = path in NEED_MODELS
    errors = [e for e in comfy_canvas.log.errors(mark) if not (needs_models and any(n in e for n in OFFLINE_NOISE))]
    assert errors == [], f"console errors while loading {path.name}"
    dialogs = comfy_canvas.dialogs()
    if not needs_models:
        assert dialogs == [], f"{path.name} opened a dialog"
    comfy_canvas.close_dialogs()
    assert _in_view(comfy_canvas) == []
    comfy_canvas.screenshot(_shots(tmp_path) / f"loaded - {path.stem}.png")


@pytest.mark.parametrize("path", NEED_MODELS, ids=[p.stem for p in NEED_MODELS])
def test_model_example_lists_its_files_in_the_missing_models_dialog(comfy_canvas, path, tmp_path):
    _load(comfy_canvas, path)
    dialogs = [d for d in comfy_canvas.dialogs() if "Missing Models" in d]
    assert len(dialogs) == 1, f"no missing-models dialog for {path.name}: {comfy_canvas.dialogs()}"
    files = [f for f in example_model_files(json.loads(path.read_text())) if MODEL_SOURCES[f][1]]
    assert files
    for name in files:
        assert f"{MODEL_SOURCES[name][0]} / {name}" in dialogs[0]
    comfy_canvas.screenshot(_shots(tmp_path) / f"models dialog - {path.stem}.png")
    comfy_canvas.close_dialogs()


@pytest.mark.parametrize("path", WEIGHT_FREE, ids=[p.stem for p in WEIGHT_FREE])
def test_weight_free_example_runs_from_the_run_button(comfy_canvas, path, tmp_path):
    client = comfy_canvas.server.client()
    before = set(client._request("GET", "/history").json())
    mark = _load(comfy_canvas, path)
    comfy_canvas.page.evaluate("() => { window.app.nodeOutputs = {}; }")
    comfy_canvas.press_run()
    comfy_canvas.wait_for_new_history(client, before, timeout=300)
    comfy_canvas.wait_idle(client)
    (entry,) = [v for k, v in client._request("GET", "/history").json().items() if k not in before]
    assert entry["status"]["status_str"] == "success", entry["status"]
    shown = comfy_canvas.wait_for_outputs(set(entry["outputs"]))
    assert shown == set(entry["outputs"]) and shown, "the frontend did not receive the outputs"
    assert comfy_canvas.log.errors(mark) == []
    comfy_canvas.screenshot(_shots(tmp_path) / f"ran - {path.stem}.png")


def test_template_browser_shows_titles_and_thumbnails(comfy_canvas, tmp_path):
    comfy_canvas.close_dialogs()
    mark = len(comfy_canvas.log.entries)
    comfy_canvas.open_templates()
    cards = comfy_canvas.template_cards("anime_pipeline")
    assert sorted(cards) == sorted(p.stem for p in EXAMPLES)
    for name, card in cards.items():
        assert card["title"] == name
        assert card["thumbnail"] and card["width"] > 0, f"no thumbnail shown for {name}"
    assert comfy_canvas.log.errors(mark) == []
    comfy_canvas.screenshot(_shots(tmp_path) / "template browser.png")
    comfy_canvas.close_dialogs()
