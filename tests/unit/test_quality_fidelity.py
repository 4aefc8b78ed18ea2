"""Keyframe fidelity gate: keyframes through a lossy round trip (JPEG 85 + blur) pass;
a delta-E 3 drift, a 5 % shift and a frame of another clip fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devkit import calibration as cal
from anime_pipeline.core.quality import colour
from anime_pipeline.core.quality import fidelity as F
from anime_pipeline.nodes.quality import KeyframeFidelityGate
from tests.unit.quality_clips import OTHER, POSITIVES, clip, image

D = F.FidelityThresholds()


def keyframes(c):
    return image(cal.lossy_round_trip(c[0], 85, 0.6)), image(cal.lossy_round_trip(c[-1], 85, 0.6))


@pytest.mark.parametrize("name", POSITIVES)
def test_clip_on_its_round_tripped_keyframes_passes(name):
    c = clip(name)
    start, end = keyframes(c)
    result = F.keyframe_fidelity_gate(image(c), start, end)
    assert result.passed, result.reasons
    assert result.metrics["start"]["ssim"] < 1.0  # never the clip's own frame unchanged
    assert result.metrics["end"]["frame"] == len(c) - 1


@pytest.mark.parametrize("name", POSITIVES)
@pytest.mark.parametrize("shift", [(3, 0, 0), (0, 3, 0), (0, 0, 3), (0, -2.12, -2.12)],
                         ids=["L+3", "a+3", "b+3", "ab-3"])
def test_delta_e_3_drift_of_the_last_frame_fails(name, shift):
    c = clip(name)
    start, end = keyframes(c)
    drifted = cal.replace_frame(c, len(c) - 1, cal.lab_shift(c[-1], *shift))
    result = F.keyframe_fidelity_gate(image(drifted), start, end)
    assert not result.passed and result.failed_frames == [len(c) - 1]


@pytest.mark.parametrize("name", POSITIVES)
def test_five_percent_shift_of_the_first_frame_fails(name):
    c = clip(name)
    start, end = keyframes(c)
    moved = cal.replace_frame(c, 0, cal.translate(c[0], 0.05))
    result = F.keyframe_fidelity_gate(image(moved), start, end)
    assert result.failed_frames == [0]
    assert result.metrics["start"]["ssim"] < D.min_ssim


@pytest.mark.parametrize("name", POSITIVES)
def test_dropped_end_keyframe_fails(name):
    c, other = clip(name), clip(OTHER)
    start, end = keyframes(c)
    swapped = cal.replace_frame(c, len(c) - 1, cal.fit(other[-1], *c.shape[1:3]))
    result = F.keyframe_fidelity_gate(image(swapped), start, end)
    assert result.failed_frames == [len(c) - 1]


def test_lab_shift_has_the_asked_delta_e():
    grey = np.full((16, 16, 3), 128, np.uint8)
    assert colour.mean_delta_e(grey, cal.lab_shift(grey, 0, 3, 0)) == pytest.approx(3.0, abs=0.35)
    assert colour.mean_delta_e(grey, grey) == 0.0


def test_mean_shift_is_the_largest_channel_difference():
    a = torch.full((1, 32, 32, 3), 0.5)
    b = a.clone()
    b[..., 2] += 4 / 255
    m = F.compare(a, b)
    assert m["mean_shift"] == pytest.approx(4.0, abs=0.01)
    assert m["mean_shift_rgb"][2] == pytest.approx(-4.0, abs=0.01)  # frame minus keyframe


def test_other_sized_keyframe_is_resized_and_recorded():
    c = clip(POSITIVES[0])
    small = image(cal.fit(cal.lossy_round_trip(c[0]), 256, 256))
    result = F.keyframe_fidelity_gate(image(c), start_keyframe=small)
    assert result.passed, result.reasons
    assert result.metrics["start"]["keyframe_resized_from"] == [256, 256]
    assert "end" not in result.metrics
    assert any("resized" in n for n in result.notes)


def test_node_errors_name_the_input():
    node = KeyframeFidelityGate()
    frames = image(clip(POSITIVES[0], frames=3))
    with pytest.raises(ValueError, match=r"AP_KeyframeFidelityGate\.start_image: connect start_image, end_image"):
        node.check(frames, D.min_ssim, D.max_mean_shift, D.max_delta_e)
    with pytest.raises(ValueError, match=r"end_image: expected one keyframe, got a batch of 3"):
        node.check(frames, D.min_ssim, D.max_mean_shift, D.max_delta_e, end_image=frames)
    with pytest.raises(ValueError, match=r"frames: empty batch"):
        node.check(frames[:0], D.min_ssim, D.max_mean_shift, D.max_delta_e, start_image=frames[:1])
    out, result, _ = node.check(frames, D.min_ssim, D.max_mean_shift, D.max_delta_e, start_image=frames[:1])
    assert out is frames and result.passed  # identical frame: trivially faithful
