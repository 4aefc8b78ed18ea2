"""Every UI-format example workflow shipped in the pack converts to API format through
the real server's /object_info and is accepted by the real server.

Weight-free workflows must also run to success. Workflows that name model files get
stand-ins under those names (the tiny random WAN DiT / VAE where the architecture
matters, an empty LoRA otherwise) and are checked for acceptance only: stand-ins test
wiring and validation, not the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit.harness.comfy import PACK_DIR, tiny_models
from devkit.harness.standins import placeholder_image, provide_stand_ins, withdraw
from devkit.harness.ui2api import convert

pytestmark = pytest.mark.integration

EXAMPLES = sorted((PACK_DIR / "example_workflows").glob("*.json"))

def test_examples_exist():
    assert EXAMPLES, "the pack ships no example workflows"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_workflow_is_accepted_by_the_real_server(path, comfy, comfy_install, tmp_path):
    workflow = json.loads(path.read_text())
    object_info = comfy.client.object_info()
    prompt = convert(workflow, object_info)
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            name = Path(node["inputs"]["image"])
            placeholder = tmp_path / f"placeholder{name.suffix}"
            placeholder_image(placeholder)
            comfy.client.upload_image(placeholder, name=name.name, subfolder=str(name.parent).strip("."))
    needs_models = provide_stand_ins(prompt, comfy.models_dir, tiny_models(comfy_install))
    prompt_id = comfy.client.queue_prompt(prompt)  # raises PromptRejected with every node error
    if needs_models:
        # Stand-in weights are not real models: acceptance is what is checked.
        withdraw(comfy.client, prompt_id)
    else:
        entry = comfy.client.wait_for(prompt_id, timeout=300)
        assert entry["status"]["status_str"] == "success"
