"""Key-match accounting against fake key maps (no ComfyUI)."""

from __future__ import annotations

import pytest
import torch

from anime_pipeline.core.lora.matching import (guess_family, is_text_encoder_key, match_keys, mismatch_message,
                                                relevant_key_map)
from devkit.loratools import WAN_LINEARS, key_map_for, sdxl_lora, tiny_wan_weights, wan_lora

WAN_MAP, WAN_SHAPES = key_map_for(tiny_wan_weights())
N_WAN_KEYS = 3 * len(WAN_LINEARS)  # up, down, alpha per module


@pytest.mark.parametrize("kohya", [False, True])
def test_wan_lora_on_wan_model_matches_every_key(kohya):
    r = match_keys(wan_lora(kohya=kohya), WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    assert (r.keys_total, r.keys_considered, r.keys_matched) == (N_WAN_KEYS, N_WAN_KEYS, N_WAN_KEYS)
    assert r.fraction == 1.0 and r.weights_patched == len(WAN_LINEARS) and r.unmatched_examples == ()


def test_partial_match_counts_exactly():
    lora = wan_lora()
    lora.update({"diffusion_model.blocks.7.self_attn.q.lora_up.weight": torch.zeros(128, 4),
                 "diffusion_model.blocks.7.self_attn.q.lora_down.weight": torch.zeros(4, 128)})
    r = match_keys(lora, WAN_MAP, text_encoder=False)
    assert (r.keys_considered, r.keys_matched) == (N_WAN_KEYS + 2, N_WAN_KEYS)
    assert r.unmatched_examples == ("diffusion_model.blocks.7.self_attn.q.lora_down.weight",
                                    "diffusion_model.blocks.7.self_attn.q.lora_up.weight")


def test_sdxl_lora_on_wan_matches_nothing_and_looks_like_sdxl():
    r = match_keys(sdxl_lora(text_encoder=False), WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    assert r.keys_matched == 0 and r.keys_considered == r.keys_total == 12
    assert r.family_guess == "SD 1.x / SDXL (UNet)"
    msg = mismatch_message("sdxl_style.safetensors", r, 0.5, "the model")
    assert "'sdxl_style.safetensors'" in msg and "0 of 12 keys (0%)" in msg and "another base model" in msg
    assert "SDXL" in msg


def sdxl_maps(with_clip: bool):
    weights = {"diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight": (640, 640),
               "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_k.weight": (640, 640),
               "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_v.weight": (640, 640),
               "diffusion_model.middle_block.1.proj_in.weight": (1280, 1280)}
    key_map, shapes = key_map_for(weights)
    if with_clip:  # what model_lora_keys_clip adds for SDXL's two text encoders
        for p in "qk":
            key_map[f"lora_te1_text_model_encoder_layers_0_self_attn_{p}_proj"] = f"clip_l.l0.{p}.weight"
            key_map[f"lora_te2_text_model_encoder_layers_0_self_attn_{p}_proj"] = f"clip_g.l0.{p}.weight"
            shapes[f"clip_l.l0.{p}.weight"], shapes[f"clip_g.l0.{p}.weight"] = (768, 768), (1280, 1280)
    return key_map, shapes


def test_text_encoder_keys_are_not_penalised_without_clip():
    lora = sdxl_lora(text_encoder=True)
    key_map, shapes = sdxl_maps(with_clip=False)
    r = match_keys(lora, key_map, text_encoder=False, shapes=shapes)
    assert (r.keys_total, r.keys_text_encoder_skipped, r.keys_considered, r.keys_matched) == (24, 12, 12, 12)
    assert r.fraction == 1.0


def test_text_encoder_keys_count_with_clip():
    lora = sdxl_lora(text_encoder=True)
    key_map, shapes = sdxl_maps(with_clip=True)
    r = match_keys(lora, key_map, text_encoder=True, shapes=shapes)
    assert (r.keys_considered, r.keys_matched, r.keys_text_encoder_skipped) == (24, 24, 0)
    # CLIP given but its keys not in the map (e.g. an SD1.5 CLIP): they count as unmatched
    r = match_keys(lora, sdxl_maps(with_clip=False)[0], text_encoder=True)
    assert (r.keys_considered, r.keys_matched) == (24, 12)


def test_text_encoder_only_lora_without_clip_considers_nothing():
    lora = {k: v for k, v in sdxl_lora().items() if k.startswith("lora_te")}
    r = match_keys(lora, WAN_MAP, text_encoder=False)
    assert r.keys_considered == 0 and r.fraction == 0.0
    assert "no CLIP is connected" in mismatch_message("te.safetensors", r, 0.5)


def test_same_names_wrong_shapes_do_not_match_and_say_so():
    r = match_keys(wan_lora(dim_scale=2), WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    # up/down have the wrong shapes; alpha is a scalar and still matches by name
    assert r.keys_wrong_shape == 2 * len(WAN_LINEARS) and r.keys_matched == len(WAN_LINEARS)
    assert "wrong shapes" in mismatch_message("wan14b.safetensors", r, 0.5)
    # without shapes the check is skipped
    assert match_keys(wan_lora(dim_scale=2), WAN_MAP, text_encoder=False).fraction == 1.0


@pytest.mark.parametrize("up, down", [(".lora_B.weight", ".lora_A.weight"), ("_lora.up.weight", "_lora.down.weight"),
                                      (".lora.up.weight", ".lora.down.weight"), (".lora_B", ".lora_A")])
def test_other_lora_layouts_are_recognised(up, down):
    prefix = "diffusion_model.blocks.0.ffn.0"
    lora = {prefix + up: torch.zeros(256, 4), prefix + down: torch.zeros(4, 128)}
    r = match_keys(lora, WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    assert r.keys_matched == 2 and r.weights_patched == 1


def test_diff_patch_shape_is_checked_and_unknown_suffix_is_unmatched():
    key = "diffusion_model.blocks.0.ffn.2"
    ok = match_keys({key + ".diff": torch.zeros(128, 256)}, WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    bad = match_keys({key + ".diff": torch.zeros(256, 128)}, WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    odd = match_keys({key + ".weird_suffix": torch.zeros(1)}, WAN_MAP, text_encoder=False, shapes=WAN_SHAPES)
    assert (ok.keys_matched, bad.keys_wrong_shape, odd.keys_matched) == (1, 1, 0)


def test_key_classification_helpers():
    assert is_text_encoder_key("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight")
    assert is_text_encoder_key("text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight")
    assert not is_text_encoder_key("lora_unet_input_blocks_0_0.lora_up.weight")
    assert guess_family(["diffusion_model.blocks.3.cross_attn.k.lora_A.weight"]) == "WAN"
    assert guess_family(["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight"]) == "Flux / HunyuanVideo"
    assert guess_family(["foo.bar"]) is None


def test_relevant_key_map_keeps_exactly_the_prefixes_that_start_a_key_in_order():
    key_map = {"diffusion_model.a": "A", "lora_unet_a": "A", "diffusion_model.b": "B", "diffusion_model.c": "C",
               "diffusion_model.c_extra": "C2", "diffusion_model": "X"}
    lora = {"diffusion_model.a.lora_up.weight": 0, "diffusion_model.a.alpha": 0,  # "." after the prefix
            "diffusion_model.c_lora.up.weight": 0}  # "_" after the prefix (diffusers layout)
    got = relevant_key_map(lora, key_map)
    assert list(got.items()) == [("diffusion_model.a", "A"), ("diffusion_model.c", "C"), ("diffusion_model", "X")]
    # the full WAN map: only the diffusion_model.* prefixes the file uses survive
    full = relevant_key_map(wan_lora(), WAN_MAP)
    assert sorted(full) == sorted(f"diffusion_model.{p}" for p, _, _ in WAN_LINEARS)
