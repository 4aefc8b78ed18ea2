"""Every UI-format example workflow shipped in the pack converts to API format through
the real server's /object_info and is accepted by the real server.

Weight-free workflows must also run to success. Workflows that name model files get
stand-ins under those names (the tiny random WAN DiT / VAE where the architecture
matters, an empty LoRA otherwise) and are checked for acceptance only: stand-ins test
wiring and validation, not the models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from driver.errors import DriverError
from tests.harness.comfy import PACK_DIR, link_model, tiny_models
from tests.harness.ui2api import convert

pytestmark = pytest.mark.integration

EXAMPLES = sorted((PACK_DIR / "example_workflows").glob("*.json"))

# (class_type or "*", input name) -> models folder of a file-name combo
MODEL_INPUTS = {
    ("*", "unet_name"): "diffusion_models",
    ("*", "vae_name"): "vae",
    ("*", "ckpt_name"): "checkpoints",
    ("*", "lora_name"): "loras",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
}
MODEL_EXT = (".safetensors", ".sft", ".ckpt", ".pt", ".pth")


def _folder_for(class_type: str, name: str) -> str | None:
    if (class_type, name) in MODEL_INPUTS:
        return MODEL_INPUTS[(class_type, name)]
    if ("*", name) in MODEL_INPUTS:
        return MODEL_INPUTS[("*", name)]
    if name.startswith("lora"):
        return "loras"
    return None


def _placeholder_strip(path: Path) -> None:
    """A small synthetic triptych strip (three textured panels, dark gutters); saved as an
    animated image (the panels drifting a few pixels per frame) when the name asks for
    one, since an animated WebP loads as a whole frame batch."""
    rng = np.random.default_rng(0)
    h, w, g = 160, 96, 8
    strip = np.full((h + 2 * g, 3 * w + 4 * g, 3), 12, np.uint8)
    for i in range(3):
        yy, xx = np.mgrid[0:h, 0:w]
        panel = np.stack([(xx * 2 + i * 60) % 256, (yy + i * 40) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        panel = np.clip(panel.astype(int) + rng.integers(-10, 10, panel.shape), 0, 255).astype(np.uint8)
        x0 = g + i * (w + g)
        strip[g:g + h, x0:x0 + w] = panel
    if path.suffix.lower() in (".webp", ".gif"):
        frames = [Image.fromarray(np.roll(strip, 3 * k, axis=1)) for k in range(6)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=62, loop=0, lossless=True)
    else:
        Image.fromarray(strip).save(path)


def _stand_ins(prompt: dict, object_info: dict, models_dir: Path, tiny_dir: Path, tmp: Path) -> bool:
    """Provide a file for every model name the prompt uses that the server lacks."""
    used = False
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if not (isinstance(value, str) and value.endswith(MODEL_EXT)):
                continue
            folder = _folder_for(node["class_type"], name)
            if folder is None:
                continue
            used = True
            if (models_dir / folder / value).exists():
                continue
            if folder == "diffusion_models":
                link_model(models_dir, folder, tiny_dir / "tiny_wan22_i2v_high.safetensors", value)
            elif folder == "vae":
                link_model(models_dir, folder, tiny_dir / "tiny_wan21_vae.safetensors", value)
            else:
                dest = models_dir / folder / value
                dest.parent.mkdir(parents=True, exist_ok=True)
                save_file({"stand_in": np.zeros(1, np.float32)}, str(dest))
    return used


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
            _placeholder_strip(placeholder)
            comfy.client.upload_image(placeholder, name=name.name, subfolder=str(name.parent).strip("."))
    needs_models = _stand_ins(prompt, object_info, comfy.models_dir, tiny_models(comfy_install), tmp_path)
    prompt_id = comfy.client.queue_prompt(prompt)  # raises PromptRejected with every node error
    if needs_models:
        # Stand-in weights are not real models: acceptance is what is checked. Take the
        # prompt out of the queue, or stop it if it already started.
        comfy.client._request("POST", "/queue", json={"delete": [prompt_id]})
        if comfy.client.is_queued(prompt_id) or comfy.client.history(prompt_id) is not None:
            comfy.client.interrupt(prompt_id)
            try:
                comfy.client.wait_for(prompt_id, timeout=300)
            except DriverError:
                pass
    else:
        entry = comfy.client.wait_for(prompt_id, timeout=300)
        assert entry["status"]["status_str"] == "success"
