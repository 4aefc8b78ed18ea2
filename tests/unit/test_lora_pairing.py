"""WAN 2.2 high/low pairing by file name (pure)."""

from __future__ import annotations

import pytest

from anime_pipeline.core.lora.pairing import Assignment, find_sibling, noise_role, plan_wan22, sibling_name
from anime_pipeline.core.lora.stack import LoraRow

LX_H = "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
LX_L = "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
CH_H = "chars/jinx_wan22_HIGH_NOISE.safetensors"
CH_L = "chars/jinx_wan22_LOW_NOISE.safetensors"
AVAILABLE = [LX_H, LX_L, CH_H, CH_L, "style.safetensors", "lone_high-noise.safetensors",
             "high_noise_dir/plain.safetensors"]


@pytest.mark.parametrize("name, role", [
    (LX_H, "high"), (LX_L, "low"), (CH_H, "high"), ("x_Low-Noise.sft", "low"), ("x_highnoise.safetensors", "high"),
    ("style.safetensors", None), ("highres_fix.safetensors", None), ("high_noise_dir/plain.safetensors", None),
])
def test_noise_role_from_file_name_only(name, role):
    assert noise_role(name) == role


def test_ambiguous_name_raises():
    with pytest.raises(ValueError, match="both high_noise and low_noise"):
        noise_role("high_noise_to_low_noise.safetensors")


def test_sibling_keeps_case_and_folder():
    assert sibling_name(LX_H) == LX_L
    assert sibling_name(CH_L) == CH_H
    assert sibling_name("a/b/x_High_Noise.sft") == "a/b/x_Low_Noise.sft"
    assert sibling_name("style.safetensors") is None


def test_find_sibling_exact_then_case_insensitive():
    assert find_sibling(LX_H, AVAILABLE) == LX_L
    assert find_sibling("chars/jinx_wan22_high_noise.safetensors", AVAILABLE) == CH_L
    assert find_sibling("lone_high-noise.safetensors", AVAILABLE) is None


def test_one_row_per_pair_brings_the_sibling_in_stack_order():
    stack = (LoraRow(CH_H, 0.5), LoraRow(LX_H, 1.0))
    plan, notes = plan_wan22(stack, AVAILABLE)
    assert plan == (
        Assignment(1, CH_H, "high", 0.5), Assignment(1, CH_L, "low", 0.5, note="sibling of row 1"),
        Assignment(2, LX_H, "high", 1.0), Assignment(2, LX_L, "low", 1.0, note="sibling of row 2"),
    )
    assert notes == []


def test_a_low_row_brings_its_high_sibling():
    plan, _ = plan_wan22((LoraRow(LX_L, 0.8),), AVAILABLE)
    assert [(a.file, a.role, a.strength) for a in plan] == [(LX_L, "low", 0.8), (LX_H, "high", 0.8)]


def test_both_halves_listed_are_not_doubled_and_keep_their_own_strengths():
    plan, _ = plan_wan22((LoraRow(LX_H, 1.0), LoraRow(LX_L, 0.6)), AVAILABLE)
    assert [(a.row, a.file, a.role, a.strength) for a in plan] == [(1, LX_H, "high", 1.0), (2, LX_L, "low", 0.6)]


def test_targets_for_files_without_the_convention():
    stack = (LoraRow("style.safetensors", 0.7, target="both"), LoraRow("motion.safetensors", target="low"),
             LoraRow("detail.safetensors", target="high"))
    plan, _ = plan_wan22(stack, AVAILABLE + ["motion.safetensors", "detail.safetensors"])
    assert [(a.file, a.role) for a in plan] == [("style.safetensors", "high"), ("style.safetensors", "low"),
                                                ("motion.safetensors", "low"), ("detail.safetensors", "high")]


def test_registry_video_rows_use_explicit_targets():
    stack = (LoraRow("chars/vi_H.safetensors", 0.5, 0.5, "high"), LoraRow("chars/vi_L.safetensors", 0.5, 0.5, "low"))
    plan, _ = plan_wan22(stack, ["chars/vi_H.safetensors", "chars/vi_L.safetensors"])
    assert [(a.file, a.role) for a in plan] == [("chars/vi_H.safetensors", "high"), ("chars/vi_L.safetensors", "low")]


def test_auto_without_convention_is_an_error_not_a_guess_and_all_bad_rows_are_listed():
    stack = (LoraRow("style.safetensors"), LoraRow(LX_H), LoraRow(LX_L, target="high"))
    with pytest.raises(ValueError) as err:
        plan_wan22(stack, AVAILABLE)
    msg = str(err.value)
    assert "row 1: 'style.safetensors'" in msg and "target 'auto' cannot choose" in msg
    assert "row 3:" in msg and "low-noise half" in msg and "row 2" not in msg


def test_half_without_sibling_goes_to_its_expert_with_a_note():
    plan, notes = plan_wan22((LoraRow("lone_high-noise.safetensors"),), AVAILABLE)
    assert [(a.file, a.role) for a in plan] == [("lone_high-noise.safetensors", "high")]
    assert len(notes) == 1 and "no low_noise sibling" in notes[0]
