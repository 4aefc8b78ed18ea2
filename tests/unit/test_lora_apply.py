"""Applying stacks: the checks before patching (core.lora.apply) and the two apply nodes,
run against small fakes of ComfyUI's LoRA functions and ModelPatcher (no ComfyUI).

The fakes follow ComfyUI 0.3.64: a key map of LoRA prefix -> weight key, ``load_lora``
returning {weight key: patch} for prefixes found in the file, ``convert_lora`` renaming
keys *in place* (as ``state_dict_prefix_replace`` does), ``add_patches`` appending
``(strength, patch)`` to the per-key list of a clone."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.lora.apply import Application, Target, prepare
from anime_pipeline.core.lora.files import read_lora
from anime_pipeline.core.lora.stack import LoraRow
from anime_pipeline.nodes import lora as nodes
from devkit.loratools import key_map_for, sdxl_lora, tiny_wan_weights, wan_lora, write

LX_H = "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
LX_L = "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
CLIP_WEIGHTS = {f"clip_l.l0.{p}.weight": (768, 768) for p in "qk"}


class FakeModule:
    def __init__(self, weights):
        self._sd = {k: torch.zeros(s) for k, s in weights.items()}

    def state_dict(self):
        return self._sd


class FakePatcher:
    clones = 0

    def __init__(self, module, patches=None):
        self.model = self.cond_stage_model = module
        self.patches = patches or {}

    def clone(self):
        FakePatcher.clones += 1
        return FakePatcher(self.model, {k: list(v) for k, v in self.patches.items()})

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        keys = [k for k in patches if k in self.model.state_dict()]
        for k in keys:
            self.patches.setdefault(k, []).append((strength_patch, patches[k]))
        return keys


def fake_load_lora(lora, to_load, log_missing=True):
    return {to_load[x]: ("lora", lora[f"{x}.lora_up.weight"]) for x in to_load if f"{x}.lora_up.weight" in lora}


def fake_convert(sd):  # renames in place, like comfy.lora_convert for WAN-Fun LoRAs
    for k in [k for k in sd if k.startswith("lora_unet__")]:
        sd["lora_unet_" + k[len("lora_unet__"):]] = sd.pop(k)
    return sd


def fake_keys_clip(module, key_map):
    for k in module.state_dict():
        key_map["lora_te1_text_model_encoder_layers_0_self_attn_" + k.split(".")[2] + "_proj"] = k
    return key_map


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """Fake comfy.lora / comfy.lora_convert / comfy.utils / folder_paths over tmp_path/loras."""
    loras = tmp_path / "loras"
    loras.mkdir()
    comfy_pkg = types.ModuleType("comfy")
    comfy_pkg.lora = types.SimpleNamespace(
        model_lora_keys_unet=lambda m, km: {**km, **key_map_for({k: tuple(v.shape) for k, v in m.state_dict().items()})[0]},
        model_lora_keys_clip=fake_keys_clip, load_lora=fake_load_lora)
    comfy_pkg.lora_convert = types.SimpleNamespace(convert_lora=fake_convert)
    comfy_pkg.utils = types.SimpleNamespace(load_torch_file=lambda path, safe_load=False: read_lora(path))
    folder_paths = types.SimpleNamespace(
        get_folder_paths=lambda name: [str(loras)],
        get_filename_list=lambda name: sorted(p.relative_to(loras).as_posix() for p in loras.rglob("*.safetensors")))
    for name, mod in {"comfy": comfy_pkg, "comfy.lora": comfy_pkg.lora, "comfy.lora_convert": comfy_pkg.lora_convert,
                      "comfy.utils": comfy_pkg.utils, "folder_paths": folder_paths}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    nodes.FILE_CACHE.clear()
    FakePatcher.clones = 0
    files = {"a.safetensors": wan_lora(1), "b.safetensors": wan_lora(2), "sdxl.safetensors": sdxl_lora(3),
             LX_H: wan_lora(4), LX_L: wan_lora(5), "style.safetensors": wan_lora(6)}
    for name, sd in files.items():
        write(sd, loras / name)
    return types.SimpleNamespace(loras=loras, files=files)


def wan_model():
    return FakePatcher(FakeModule(tiny_wan_weights()))


def apply(stack, model=None, clip=None, on_mismatch="error", min_match=0.5):
    model = model or wan_model()
    out_model, out_clip, report = nodes.AP_ApplyLoraStack().apply(model, tuple(stack), on_mismatch, min_match, clip=clip)
    return model, out_model, out_clip, json.loads(report)


def chained_loaders(model, rows, loras):
    """What chained core LoraLoaderModelOnly nodes do: one clone + add_patches per file."""
    import comfy.lora

    for file, strength in rows:
        key_map = comfy.lora.model_lora_keys_unet(model.model, {})
        model = model.clone()
        model.add_patches(comfy.lora.load_lora(read_lora(loras / file), key_map), strength)
    return model


KEY = "diffusion_model.blocks.0.ffn.0.weight"


def test_stack_equals_chained_core_loaders_and_leaves_input_untouched(comfy):
    model, out, clip, report = apply([LoraRow("a.safetensors", 0.8), LoraRow("b.safetensors", -0.5)])
    reference = chained_loaders(wan_model(), [("a.safetensors", 0.8), ("b.safetensors", -0.5)], comfy.loras)
    assert out is not model and model.patches == {} and clip is None
    assert out.patches.keys() == reference.patches.keys() and len(out.patches) == 10
    for key, patches in out.patches.items():
        assert [(s, torch.equal(p[1], q[1])) for (s, p), (_, q) in zip(patches, reference.patches[key])] == \
            [(0.8, True), (-0.5, True)]
    assert out.model is model.model  # patches only: the base weights are shared, not copied
    up = comfy.files["a.safetensors"]["diffusion_model.blocks.0.ffn.0.lora_up.weight"]
    assert torch.equal(out.patches[KEY][0][1][1], up)
    assert [(e["file"], e["strength_model"], e["keys_matched"], e["match"], e["status"]) for e in report["loras"]] == \
        [("a.safetensors", 0.8, 30, 1.0, "applied"), ("b.safetensors", -0.5, 30, 1.0, "applied")]


def test_wrong_architecture_stops_before_any_patch(comfy):
    model = wan_model()
    with pytest.raises(InputError) as err:
        apply([LoraRow("a.safetensors"), LoraRow("sdxl.safetensors")], model=model)
    msg = str(err.value)
    assert msg.startswith("AP_ApplyLoraStack.lora_stack: 1 LoRA(s) cannot be applied; nothing was patched")
    assert "row 2: 'sdxl.safetensors': only 0 of 12 keys (0%) match the model, below min_match 0.5" in msg
    assert "another base model (SD 1.x / SDXL (UNet)" in msg
    assert model.patches == {} and FakePatcher.clones == 0


def test_warn_applies_anyway_and_reports_it(comfy):
    _, out, _, report = apply([LoraRow("sdxl.safetensors"), LoraRow("a.safetensors")], on_mismatch="warn")
    assert [e["status"] for e in report["loras"]] == ["below_min_match", "applied"]
    assert report["loras"][0]["keys_text_encoder_skipped"] == 12 and report["loras"][0]["match"] == 0.0
    assert [s for s, _ in out.patches[KEY]] == [1.0]


def test_all_bad_rows_are_listed_at_once(comfy):
    (comfy.loras / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError) as err:
        apply([LoraRow("missing.safetensors"), LoraRow("bad.safetensors"), LoraRow("sdxl.safetensors")])
    msg = str(err.value)
    assert "3 LoRA(s) cannot be applied" in msg
    assert f"row 1: LoRA file 'missing.safetensors' not found; searched: {comfy.loras}" in msg
    assert "row 2: 'bad.safetensors' is not a valid safetensors file" in msg and "row 3: 'sdxl.safetensors'" in msg


def test_clip_is_patched_with_strength_clip_and_its_keys_count(comfy):
    lora = wan_lora(7)
    lora.update({f"lora_te1_text_model_encoder_layers_0_self_attn_{p}_proj.lora_up.weight": torch.ones(768, 2)
                 for p in "qk"})
    lora.update({f"lora_te1_text_model_encoder_layers_0_self_attn_{p}_proj.lora_down.weight": torch.ones(2, 768)
                 for p in "qk"})
    write(lora, comfy.loras / "both.safetensors")
    clip = FakePatcher(FakeModule(CLIP_WEIGHTS))
    _, out, out_clip, report = apply([LoraRow("both.safetensors", 1.0, 0.25)], clip=clip)
    assert out_clip is not clip and clip.patches == {}
    assert [s for s, _ in out_clip.patches["clip_l.l0.q.weight"]] == [0.25] and [s for s, _ in out.patches[KEY]] == [1.0]
    entry = report["loras"][0]
    assert (entry["keys_considered"], entry["keys_matched"], entry["strength_clip"]) == (34, 34, 0.25)
    _, _, no_clip, report = apply([LoraRow("both.safetensors", 1.0, 0.25)])
    assert no_clip is None and report["loras"][0]["keys_text_encoder_skipped"] == 4


def test_zero_model_strength_without_clip_is_skipped_unread(comfy):
    model, out, _, report = apply([LoraRow("never_read.safetensors", 0.0, 1.0)])
    assert out is model and report["loras"][0]["status"] == "skipped"


def test_expert_targets_are_refused_by_the_single_model_node(comfy):
    with pytest.raises(InputError, match=r"lora_stack: rows for one WAN 2.2 expert .*row 1 \(a.safetensors\): target 'high'"):
        apply([LoraRow("a.safetensors", target="high")])


def test_min_match_out_of_range_names_the_input(comfy):
    with pytest.raises(InputError, match=r"AP_ApplyLoraStack\.min_match: must be a fraction in 0\.\.1, got 1\.5"):
        apply([LoraRow("a.safetensors")], min_match=1.5)


def test_wan22_pair_goes_high_to_high_and_low_to_low(comfy):
    high, low = wan_model(), wan_model()
    out_h, out_l, report = nodes.AP_ApplyLoraStackWan22().apply(
        high, low, (LoraRow(LX_H, 1.0), LoraRow("style.safetensors", 0.5, target="both")), "error", 0.5)
    up = "diffusion_model.blocks.0.ffn.0.lora_up.weight"
    got_h = [(s, p[1]) for s, p in out_h.patches[KEY]]
    got_l = [(s, p[1]) for s, p in out_l.patches[KEY]]
    assert [s for s, _ in got_h] == [1.0, 0.5] and [s for s, _ in got_l] == [1.0, 0.5]
    assert torch.equal(got_h[0][1], comfy.files[LX_H][up]) and torch.equal(got_l[0][1], comfy.files[LX_L][up])
    assert torch.equal(got_h[1][1], comfy.files["style.safetensors"][up])
    assert high.patches == {} and low.patches == {}
    entries = json.loads(report)["loras"]
    assert [(e["file"], e["target"], e.get("note", "")) for e in entries] == [
        (LX_H, "model_high", ""), (LX_L, "model_low", "sibling of row 1"),
        ("style.safetensors", "model_high", ""), ("style.safetensors", "model_low", "")]
    assert all(e["match"] == 1.0 for e in entries)


def test_wan22_auto_without_name_convention_is_an_error(comfy):
    with pytest.raises(InputError, match=r"(?s)AP_ApplyLoraStackWan22\.lora_stack: .*'style.safetensors' has no high_noise"):
        nodes.AP_ApplyLoraStackWan22().apply(wan_model(), wan_model(), (LoraRow("style.safetensors"),), "error", 0.5)


def test_prepare_converts_a_copy_so_the_cached_file_is_not_renamed():
    cached = {"lora_unet__blocks_0_ffn_0.lora_up.weight": torch.ones(256, 4),
              "lora_unet__blocks_0_ffn_0.lora_down.weight": torch.ones(4, 128)}
    key_map, shapes = key_map_for(tiny_wan_weights())
    (p,) = prepare([Application(1, "fun.safetensors", "m", 1.0)], {"m": Target("m", key_map, shapes)},
                   lambda name: cached, convert=fake_convert)
    assert p.match.fraction == 1.0 and set(p.lora) == {"lora_unet_blocks_0_ffn_0.lora_up.weight",
                                                       "lora_unet_blocks_0_ffn_0.lora_down.weight"}
    assert set(cached) == {"lora_unet__blocks_0_ffn_0.lora_up.weight", "lora_unet__blocks_0_ffn_0.lora_down.weight"}
