"""LoRA stacks in a real ComfyUI, on the tiny random WAN 2.2 experts, with tiny LoRAs
written at test time. Sampler outputs are saved losslessly (SaveLatent) and compared
bit for bit.

* a 2-LoRA stack through AP_ApplyLoraStack == two chained core LoraLoaderModelOnly,
  and != the unpatched model (so the equality is not vacuous);
* AP_ApplyLoraStackWan22 puts the high-noise file on the high-noise expert only and its
  sibling on the low-noise expert only (== each expert patched separately by core
  loaders, != the files swapped);
* a LoRA with another architecture's keys fails in AP_ApplyLoraStack, before sampling;
* the shipped example workflow (character pair + lightx2v pair) runs end to end once its
  text encoder is swapped for zero conditioning and its models for the tiny ones.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from driver.errors import ExecutionFailed
from devkit.harness.comfy import PACK_DIR
from devkit.harness.ui2api import convert
from devkit.loratools import sdxl_lora, wan_lora, write

pytestmark = pytest.mark.integration

A, B = "ap_test/style_a.safetensors", "ap_test/style_b.safetensors"
CHAR_H, CHAR_L = "ap_test/char_wan22_high_noise.safetensors", "ap_test/char_wan22_low_noise.safetensors"
SDXL = "ap_test/sdxl_style.safetensors"


@pytest.fixture(scope="module")
def loras(comfy):
    folder = comfy.models_dir / "loras"
    for name, sd in ((A, wan_lora(11)), (B, wan_lora(12)), (CHAR_H, wan_lora(21)), (CHAR_L, wan_lora(22)),
                     (SDXL, sdxl_lora(31))):
        write(sd, folder / name)
    return folder


class Graph:
    """API-format prompt builder: ``g.add(cls, **inputs)`` returns the node id."""

    def __init__(self, tiny_wan):
        self.nodes: dict[str, dict] = {}
        self.high = self.add("UNETLoader", unet_name=tiny_wan["high"], weight_dtype="default")
        self.low = self.add("UNETLoader", unet_name=tiny_wan["low"], weight_dtype="default")
        cond = self.add("AP_TestZeroConditioning", tokens=8)
        vae = self.add("VAELoader", vae_name=tiny_wan["vae"])
        self.video = self.add("WanFirstLastFrameToVideo", positive=[cond, 0], negative=[cond, 1], vae=[vae, 0],
                              width=32, height=32, length=5, batch_size=1)

    def add(self, cls: str, **inputs) -> str:
        nid = str(len(self.nodes) + 1)
        self.nodes[nid] = {"class_type": cls, "inputs": inputs}
        return nid

    def lora_stack(self, *rows) -> str:
        kw = {}
        for i in range(1, 7):
            file, strength, target = rows[i - 1] if i <= len(rows) else ("None", 1.0, "auto")
            kw.update({f"lora_name_{i}": file, f"strength_model_{i}": strength, f"strength_clip_{i}": 0.0,
                       f"target_{i}": target})
        return self.add("AP_LoraStack", **kw)

    def core_loras(self, model, *rows) -> list:
        for file, strength in rows:
            model = [self.add("LoraLoaderModelOnly", model=model, lora_name=file, strength_model=strength), 0]
        return model

    def sample(self, model, latent=None, *, start=0, end=10000, prefix: str) -> str:
        """KSamplerAdvanced (4 steps, euler/simple, cfg 1, fixed seed) + SaveLatent."""
        first = start == 0
        ks = self.add("KSamplerAdvanced", model=model, add_noise="enable" if first else "disable", noise_seed=7,
                      steps=4, cfg=1.0, sampler_name="euler", scheduler="simple", positive=[self.video, 0],
                      negative=[self.video, 1], latent_image=latent or [self.video, 2], start_at_step=start,
                      end_at_step=end, return_with_leftover_noise="enable" if end < 4 else "disable")
        self.add("SaveLatent", samples=[ks, 0], filename_prefix=f"lora_tests/{prefix}")
        return ks

    def two_pass(self, model_high, model_low, prefix: str) -> None:
        first = self.sample(model_high, end=2, prefix=f"{prefix}_high")
        self.sample(model_low, [first, 0], start=2, prefix=f"{prefix}_low")


def latents(comfy, entry, tmp_path) -> dict[str, torch.Tensor]:
    """SaveLatent outputs of a history entry, by filename prefix (``ap_high`` ...)."""
    out = {}
    for ref in comfy.client.output_files(entry):
        if ref["ui_key"] == "latents":
            path = comfy.client.download(ref, tmp_path / ref["filename"])
            out[ref["filename"].rsplit("_", 2)[0]] = load_file(str(path))["latent_tensor"]
    return out


def report_of(entry, node_id: str) -> dict:
    return json.loads(entry["outputs"][node_id]["text"][0])


def test_stack_of_two_equals_two_chained_core_loaders(comfy, tiny_wan, loras, tmp_path):
    g = Graph(tiny_wan)
    stack = g.lora_stack((A, 0.8, "auto"), (B, -0.6, "auto"))
    applied = g.add("AP_ApplyLoraStack", model=[g.high, 0], lora_stack=[stack, 0], on_mismatch="error", min_match=0.5)
    g.add("PreviewAny", source=[applied, 2])
    preview = str(len(g.nodes))
    g.sample([applied, 0], prefix="ap")
    g.sample(g.core_loras([g.high, 0], (A, 0.8), (B, -0.6)), prefix="core")
    g.sample([g.high, 0], prefix="plain")
    entry = comfy.client.run(g.nodes, timeout=600)
    out = latents(comfy, entry, tmp_path)
    assert set(out) == {"ap", "core", "plain"}
    assert torch.isfinite(out["ap"]).all()
    assert torch.equal(out["ap"], out["core"])
    assert not torch.equal(out["ap"], out["plain"])
    report = report_of(entry, preview)
    assert [(e["file"], e["strength_model"], e["keys_matched"], e["match"]) for e in report["loras"]] == \
        [(A, 0.8, 30, 1.0), (B, -0.6, 30, 1.0)]


def test_wan22_pair_goes_high_to_high_and_low_to_low(comfy, tiny_wan, loras, tmp_path):
    g = Graph(tiny_wan)
    stack = g.lora_stack((CHAR_H, 1.0, "auto"))  # one row: the low-noise sibling comes along
    wan = g.add("AP_ApplyLoraStackWan22", model_high=[g.high, 0], model_low=[g.low, 0], lora_stack=[stack, 0],
                on_mismatch="error", min_match=0.5)
    g.add("PreviewAny", source=[wan, 2])
    preview = str(len(g.nodes))
    g.two_pass([wan, 0], [wan, 1], "ap")
    g.two_pass(g.core_loras([g.high, 0], (CHAR_H, 1.0)), g.core_loras([g.low, 0], (CHAR_L, 1.0)), "core")
    g.two_pass(g.core_loras([g.high, 0], (CHAR_L, 1.0)), g.core_loras([g.low, 0], (CHAR_H, 1.0)), "swapped")
    g.sample([g.high, 0], end=2, prefix="plain_high")
    entry = comfy.client.run(g.nodes, timeout=600)
    out = latents(comfy, entry, tmp_path)
    # first pass: the high-noise expert carries exactly the high file
    assert torch.equal(out["ap_high"], out["core_high"])
    assert not torch.equal(out["ap_high"], out["swapped_high"])
    assert not torch.equal(out["ap_high"], out["plain_high"])
    # second pass: the low-noise expert carries exactly the low file
    assert torch.equal(out["ap_low"], out["core_low"])
    assert not torch.equal(out["ap_low"], out["swapped_low"])
    report = report_of(entry, preview)
    assert [(e["file"], e["target"], e["match"]) for e in report["loras"]] == \
        [(CHAR_H, "model_high", 1.0), (CHAR_L, "model_low", 1.0)]


def test_other_architecture_fails_in_the_stack_node_before_sampling(comfy, tiny_wan, loras):
    g = Graph(tiny_wan)
    stack = g.lora_stack((A, 1.0, "auto"), (SDXL, 1.0, "auto"))
    applied = g.add("AP_ApplyLoraStack", model=[g.high, 0], lora_stack=[stack, 0], on_mismatch="error", min_match=0.5)
    sampler = g.sample([applied, 0], prefix="never")
    ran = []
    with pytest.raises(ExecutionFailed) as err:
        comfy.client.run(g.nodes, timeout=300,
                         on_event=lambda kind, data: ran.append(data.get("node")) if kind == "executing" else None)
    exc = err.value
    assert exc.node_type == "AP_ApplyLoraStack" and exc.node_id == applied
    assert exc.exception_type.endswith("InputError")
    msg = exc.exception_message
    assert "lora_stack" in msg and f"'{SDXL}': only 0 of 12 keys (0%) match the model" in msg
    assert "another base model" in msg and "nothing was patched" in msg
    assert applied in ran and sampler not in ran


def test_example_workflow_runs_with_tiny_models(comfy, tiny_wan, tmp_path):
    workflow = json.loads((PACK_DIR / "example_workflows" / "wan22_character_lora_pair.json").read_text())
    prompt = convert(workflow, comfy.client.object_info())
    by_class = {}
    for nid, node in prompt.items():
        by_class.setdefault(node["class_type"], []).append(nid)
    # stand-ins: zero conditioning for the text encoder, tiny models, tiny LoRAs under the example's names
    (clip_loader,) = by_class.pop("CLIPLoader")
    del prompt[clip_loader]
    for nid in by_class["CLIPTextEncode"]:
        prompt[nid] = {"class_type": "AP_TestZeroConditioning", "inputs": {"tokens": 8}}
    for nid in by_class["UNETLoader"]:
        name = prompt[nid]["inputs"]["unet_name"]
        prompt[nid]["inputs"]["unet_name"] = tiny_wan["high" if "high_noise" in name else "low"]
    (vae_loader,) = by_class["VAELoader"]
    prompt[vae_loader]["inputs"]["vae_name"] = tiny_wan["vae"]
    for nid in by_class["LoadImage"]:
        image = tmp_path / prompt[nid]["inputs"]["image"]
        Image.new("RGB", (32, 32), (200, 80, 40)).save(image)
        comfy.client.upload_image(image)
    (flf,) = by_class["WanFirstLastFrameToVideo"]
    prompt[flf]["inputs"].update(width=32, height=32, length=5)
    (stack,) = by_class["AP_LoraStack"]
    rows = [v for k, v in sorted(prompt[stack]["inputs"].items()) if k.startswith("lora_name_") and v != "None"]
    assert len(rows) == 2 and all("high_noise" in r for r in rows)  # one row per pair
    for seed, high in enumerate(rows):
        write(wan_lora(40 + seed), comfy.models_dir / "loras" / high)
        write(wan_lora(50 + seed), comfy.models_dir / "loras" / high.replace("high_noise", "low_noise"))

    entry = comfy.client.run(prompt, timeout=600)
    (preview,) = by_class["PreviewAny"]
    report = json.loads(entry["outputs"][preview]["text"][0])
    assert [(e["file"], e["target"], e["match"]) for e in report["loras"]] == [
        (rows[0], "model_high", 1.0), (rows[0].replace("high_noise", "low_noise"), "model_low", 1.0),
        (rows[1], "model_high", 1.0), (rows[1].replace("high_noise", "low_noise"), "model_low", 1.0)]
    assert any(r["filename"].endswith(".mp4") for r in comfy.client.output_files(entry))
