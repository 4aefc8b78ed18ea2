"""The driver's API templates against a real server: every node type and required input
exists there, WAN lengths are 4n+1, and each template's UI twin converts back to the
template exactly (so artists and the driver see the same graph)."""

from __future__ import annotations

import json

import pytest

from driver.render.compile import Compiler
from driver.config import load_config
from driver.story.plan import make_plan
from driver.render.preflight import workflow_problems
from driver.story.storyboard import REPO_ROOT, load_storyboard
from driver.ui_export import to_ui
from driver.render.workflow import load_template
from devkit.harness.comfy import PACK_DIR
from devkit.harness.ui2api import convert

pytestmark = pytest.mark.integration

TEMPLATES = sorted((REPO_ROOT / "workflows").glob("*.api.json"))


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.client.object_info()


def _missing(object_info, prompt) -> list[str]:
    return sorted({n["class_type"] for n in prompt.values()} - set(object_info))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_ui_twin_converts_back_to_the_template(path, object_info):
    template = load_template(path)
    if _missing(object_info, template):
        pytest.skip(f"nodes not on the server yet: {_missing(object_info, template)}")
    assert convert(to_ui(template, object_info, bypass=()), object_info) == template
    twin = PACK_DIR / "example_workflows" / f"wf_{path.name.removesuffix('.api.json')}.json"
    assert twin.is_file(), f"no UI twin for {path.name}: run python -m driver.ui_export"
    shipped = json.loads(twin.read_text())
    assert shipped["nodes"] == to_ui(template, object_info)["nodes"], f"{twin.name} is stale: regenerate it"


def test_every_compiled_workflow_matches_the_server(object_info):
    """Node types, required inputs and WAN lengths of every job of the example episode
    (model files are the config's business and are not on a test server)."""
    sb = load_storyboard(REPO_ROOT / "storyboards" / "storyboard_ep_001.json")
    cfg = load_config(REPO_ROOT / "configs" / "project.example.yaml")
    compiler = Compiler(sb, cfg, "check")
    problems = []
    for job in make_plan(sb, cfg).jobs:
        c = compiler.compile(job)
        if _missing(object_info, c.prompt):
            continue
        problems += [p for p in workflow_problems(c, object_info) if "is not on the server" not in p]
    assert not problems


def test_compiled_episode_workflows_are_accepted_with_stand_in_models(comfy, comfy_install, tmp_path):
    """Every workflow the driver compiles for the example episode (T2I keyframes with the
    character registry inline, triptych split, WAN FLF and split FLF, held shots) passes
    preflight and the server's own validation once files exist under the configured model
    names (stand-ins: nothing here can run real T2I or 14B WAN weights on a CPU)."""
    from driver.render import preflight
    from devkit.harness.comfy import tiny_models
    from devkit.harness.standins import placeholder_image, provide_stand_ins, withdraw

    sb = load_storyboard(REPO_ROOT / "storyboards" / "storyboard_ep_001.json")
    cfg = load_config(REPO_ROOT / "configs" / "project.example.yaml").with_overrides(
        model_profiles={"wan22_sdxl": {"video": {"clip_vision": "clip_vision_h.safetensors"}}})  # identity gate on
    compiler = Compiler(sb, cfg, "accept")
    compiled = [compiler.compile(job) for job in make_plan(sb, cfg).jobs]
    strip = tmp_path / "placeholder.png"
    placeholder_image(strip)
    for c in compiled:
        provide_stand_ins(c.prompt, comfy.models_dir, tiny_models(comfy_install))
        for node in c.prompt.values():
            if node["class_type"] == "LoadImage":
                sub, _, name = node["inputs"]["image"].rpartition("/")
                comfy.client.upload_image(strip, subfolder=sub, name=name)
    preflight.check(compiled, comfy.client.object_info())
    for c in compiled:
        prompt_id = comfy.client.queue_prompt(c.prompt, c.prompt_id)  # raises PromptRejected on any node error
        withdraw(comfy.client, prompt_id)
