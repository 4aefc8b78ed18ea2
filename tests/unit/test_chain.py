"""Split-FLF segment joining (core/chain.py) and the shared luma SSIM (core/imaging.ssim)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from anime_pipeline.core.chain import concat_segments
from anime_pipeline.core.errors import InputError
from anime_pipeline.core.imaging import from_uint8, luma, ssim

KEYS = {"seam_index", "dropped_frame", "luma_jump", "ssim_across_seam", "hero_similarity"}


def flat(value: float, n: int, h: int = 16, w: int = 24) -> torch.Tensor:
    return torch.full((n, h, w, 3), value)


def wan_clip(name: str = "image_to_video_wan-1.webp", frames: int = 17) -> torch.Tensor:
    templates = pytest.importorskip("comfyui_workflow_templates", reason="comfyui-workflow-templates (test extra) not installed")
    path = Path(templates.__file__).parent / "templates" / name
    if not path.exists():
        pytest.skip(f"{name} is not shipped by this comfyui-workflow-templates version (pin 0.1.95)")
    with Image.open(path) as im:
        arr = np.stack([np.asarray(f.convert("RGB")) for _, f in zip(range(frames), ImageSequence.Iterator(im))])
    return from_uint8(arr)


def test_ssim_known_values():
    # constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1); C1 = 0.01^2
    assert ssim(flat(0.2, 1), flat(0.4, 1))[0] == pytest.approx((0.16 + 1e-4) / (0.2 + 1e-4), abs=1e-9)
    x = torch.rand(2, 32, 32, 3)
    assert np.allclose(ssim(x, x), 1.0)
    assert ssim(x, torch.rand(2, 32, 32, 3)).max() < 0.1


def test_drop_shared_hero_concatenates_without_the_duplicate():
    a, b = torch.rand(9, 16, 24, 3), torch.rand(9, 16, 24, 3)
    out, report = concat_segments(a, b)
    assert out.shape[0] == 17
    assert torch.equal(out[:9], a) and torch.equal(out[9:], b[1:])
    assert set(report) == KEYS
    assert report["seam_index"] == 9 and report["dropped_frame"] == 0
    json.dumps(report)

    out, report = concat_segments(a, b, drop_shared_hero=False)
    assert out.shape[0] == 18 and torch.equal(out[9:], b)
    assert report["seam_index"] == 9 and report["dropped_frame"] is None


def test_seam_metrics_known_values():
    a, b = flat(0.2, 5), flat(0.5, 5)
    _, report = concat_segments(a, b)
    assert report["luma_jump"] == pytest.approx(0.3, abs=1e-6)
    assert report["ssim_across_seam"] == pytest.approx((2 * 0.2 * 0.5 + 1e-4) / (0.04 + 0.25 + 1e-4), abs=1e-6)
    b[0] = a[-1]  # identical hero renders
    _, report = concat_segments(a, b)
    assert report["hero_similarity"] == pytest.approx(1.0)


def test_smoothing_spreads_the_jump_over_k_frames_without_changing_the_count():
    a, b = flat(0.2, 5), flat(0.5, 7)
    out, report = concat_segments(a, b, smooth_frames=3)
    assert out.shape[0] == 11
    means = out[5:].mean(dim=(1, 2, 3))
    # residual -0.3 added with weights 3/4, 2/4, 1/4, then B unchanged
    assert torch.allclose(means, torch.tensor([0.275, 0.35, 0.425, 0.5, 0.5, 0.5]), atol=1e-6)
    assert report["luma_jump"] == pytest.approx(0.075, abs=1e-6)


def test_colour_matching_removes_a_brightness_step_on_a_real_clip():
    clip = wan_clip()
    a, b = clip[:9], clip[8:17]
    b = (b * 0.92 + 0.06).clamp(0, 1)  # B rendered a bit flatter and brighter
    _, raw = concat_segments(a, b)
    _, matched = concat_segments(a, b, color_match="all")
    assert raw["luma_jump"] > 4 / 255
    assert matched["luma_jump"] < 1 / 255
    assert matched["ssim_across_seam"] > raw["ssim_across_seam"]


def test_fade_keeps_the_end_keyframe_and_all_moves_it():
    clip = wan_clip()
    a, b = clip[:9], (clip[8:17] + 0.05).clamp(0, 1)
    faded, _ = concat_segments(a, b, color_match="fade")
    assert torch.equal(faded[-1], b[-1])
    whole, _ = concat_segments(a, b, color_match="all")
    assert (luma(whole[-1:]).mean() - luma(b[-1:]).mean()).abs() > 0.03


def _fade_strengths(len_b: int, drop: bool) -> list[float]:
    """The ``fade`` strength each output frame of B got: every B frame is one texture x and A's
    last frame is x + 0.1, so the transfer is a pure +0.1 offset and frame j comes out as
    x + w_j * 0.1."""
    x = 0.2 + 0.4 * torch.rand(1, 16, 24, 3, generator=torch.Generator().manual_seed(len_b))
    a = torch.cat([torch.rand(3, 16, 24, 3), x + 0.1])
    b = x.expand(len_b, -1, -1, -1).clone()
    out, report = concat_segments(a, b, drop_shared_hero=drop, color_match="fade")
    assert out.shape[0] == 4 + len_b - drop and report["seam_index"] == 4
    return [float(((f - x[0]).mean() / 0.1)) for f in out[4:]]


@pytest.mark.parametrize("len_b", [2, 3, 5, 17])
def test_fade_is_full_on_the_first_frame_after_the_seam_and_zero_on_b_last(len_b):
    """With the hero dropped, B's first kept frame is the seam: full strength there, falling
    linearly to 0 on B's last frame (its end keyframe). A 2-frame B keeps only that end
    keyframe, which fade leaves as generated. Without the drop, B's own first frame is the seam."""
    kept = len_b - 1
    expected = [1 - j / (kept - 1) for j in range(kept)] if kept > 1 else [0.0]
    assert _fade_strengths(len_b, drop=True) == pytest.approx(expected, abs=1e-4)
    assert _fade_strengths(len_b, drop=False) == pytest.approx([1 - j / (len_b - 1) for j in range(len_b)], abs=1e-4)


def test_fade_strengths_at_the_seam_known_values():
    assert _fade_strengths(3, drop=True) == pytest.approx([1.0, 0.0], abs=1e-4)
    assert _fade_strengths(5, drop=True) == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0], abs=1e-4)
    assert _fade_strengths(2, drop=False) == pytest.approx([1.0, 0.0], abs=1e-4)
    assert _fade_strengths(1, drop=False) == pytest.approx([0.0], abs=1e-4)  # only the end keyframe


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"segment_a": torch.rand(3, 16, 24, 3), "segment_b": torch.rand(3, 16, 20, 3)}, "segment_b: frame size"),
        ({"segment_a": torch.zeros(0, 16, 24, 3), "segment_b": torch.rand(3, 16, 24, 3)}, "segment_a: empty batch"),
        ({"segment_a": torch.rand(3, 16, 24, 3), "segment_b": torch.rand(1, 16, 24, 3)}, "segment_b: 1 frame"),
        ({"segment_a": torch.rand(3, 16, 24, 3), "segment_b": torch.full((3, 16, 24, 3), float("nan"))}, "segment_b: NaN"),
        ({"segment_a": torch.rand(3, 16, 24, 3), "segment_b": torch.rand(3, 16, 24, 3), "color_match": "lab"}, "color_match"),
        ({"segment_a": torch.rand(3, 16, 24, 3), "segment_b": torch.rand(3, 16, 24, 3), "smooth_frames": 3}, "smooth_frames: .*0..2"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        concat_segments(**kwargs, node="AP_FLFChainConcat")


def test_node_returns_frames_and_the_report_as_json():
    from anime_pipeline.nodes.video import FLFChainConcat

    frames, report = FLFChainConcat().concat(torch.rand(5, 8, 8, 3), torch.rand(5, 8, 8, 3), True, 0, "off")
    assert frames.shape[0] == 9 and set(json.loads(report)) == KEYS
