"""Stand-ins for tests against a real server: placeholder input images and stand-in
model files under the names a workflow uses (the tiny random WAN DiT / VAE where the
architecture matters, an empty safetensors file otherwise). They test wiring and
validation, never the models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

from devkit.harness.comfy import link_model

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
    ("UpscaleModelLoader", "model_name"): "upscale_models",
}
MODEL_EXT = (".safetensors", ".sft", ".ckpt", ".pt", ".pth")


def folder_for(class_type: str, name: str) -> str | None:
    if (class_type, name) in MODEL_INPUTS:
        return MODEL_INPUTS[(class_type, name)]
    if ("*", name) in MODEL_INPUTS:
        return MODEL_INPUTS[("*", name)]
    if name.startswith("lora"):
        return "loras"
    return None


def placeholder_image(path: Path) -> None:
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


def provide_stand_ins(prompt: dict, models_dir: Path, tiny_dir: Path) -> bool:
    """Provide a file for every model name the prompt uses that the server lacks; returns
    whether the prompt names any model file at all."""
    used = False
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if not (isinstance(value, str) and value.endswith(MODEL_EXT)):
                continue
            folder = folder_for(node["class_type"], name)
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


def withdraw(client, prompt_id: str, timeout: float = 120.0) -> None:
    """Take an accepted prompt back: delete it from the queue, or interrupt it until it
    stops if it already started (an interrupt sent before a prompt starts is cleared
    when it starts, so keep sending until it is neither running nor pending)."""
    client._request("POST", "/queue", json={"delete": [prompt_id]})
    deadline = time.monotonic() + timeout
    while client.is_queued(prompt_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"prompt {prompt_id} still running {timeout:.0f} s after its withdrawal")
        client.interrupt()
        time.sleep(0.2)
