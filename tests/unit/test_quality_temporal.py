"""Temporal gate: real WAN clips pass; +4 % brightness on every 4th frame and the real
flickering FLF template fail; cut intervals are skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.contracts import CUT, MOTION, MotionLabels
from devkit import calibration as cal
from anime_pipeline.core.quality import temporal as T
from anime_pipeline.nodes.quality import TemporalGate
from tests.unit.quality_clips import POSITIVES, clip, image

D = T.TemporalThresholds()


@pytest.mark.parametrize("name", POSITIVES)
def test_real_clips_pass(name):
    result = T.temporal_gate(image(clip(name)))
    assert result.passed, result.reasons
    assert result.metrics["max_flicker"] < D.max_flicker


@pytest.mark.parametrize("name", POSITIVES)
def test_four_percent_flicker_on_every_fourth_frame_is_caught(name):
    c = clip(name)
    result = T.temporal_gate(image(cal.brightness_flicker(c, gain=1.04, period=4, phase=3)))
    assert not result.passed
    pulsed = set(range(3, len(c) - 1, 4))  # the last frame has no successor to pulse against
    assert set(result.metrics["flicker_frames"]) <= pulsed
    assert len(result.metrics["flicker_frames"]) >= 0.75 * len(pulsed)


def test_real_flickering_template_fails():
    result = T.temporal_gate(image(clip(cal.FLICKER_CLIP)))
    assert not result.passed
    assert result.metrics["median_warp_error"] > D.max_median_warp_error


def test_unlabelled_edit_cut_is_flagged_and_skipped_when_labelled():
    name = "video_wan2_2_14B_fun_inpaint-1.webp"
    (cut,) = cal.KNOWN_CUTS[name]
    c = clip(name, frames=None)[cut - 8:cut + 9]  # 17 frames around the cut
    local = 8
    result = T.temporal_gate(image(c))
    assert not result.passed and result.metrics["unstable_intervals"] == [local]
    labels = MotionLabels(tuple(CUT if i == local else MOTION for i in range(len(c) - 1)), len(c))
    labelled = T.temporal_gate(image(c), labels=labels)
    assert labelled.passed, labelled.reasons
    assert labelled.metrics["cut_intervals"] == [local] and labelled.metrics["cuts_from"] == "motion_labels"


def test_brightness_pulses_maths():
    g = np.array([0.0, 0.04, -0.04, 0.0, 0.05, 0.05, np.nan, 0.02])
    p = T.brightness_pulses(g)
    assert len(p) == len(g) + 1
    assert p[2] == pytest.approx(0.04)          # up into frame 2, down out of it: a pulse
    assert p[5] == 0.0 and p[6] == 0.0          # a lighting step (up, up) is no pulse
    assert p[7] == 0.0 and p[0] == 0.0 and p[-1] == 0.0  # unmeasured interval, clip ends


def test_residuals_of_a_pure_gain_change():
    rng = np.random.default_rng(1)
    base = np.clip(rng.normal(120, 40, (64, 96, 3)), 0, 255).astype(np.float32)
    base = np.ascontiguousarray(base.astype(np.uint8))
    brighter = np.clip(base.astype(np.float32) * 1.1 + 0.5, 0, 255).astype(np.uint8)
    err, log_gain, luma_shift, chroma_shift, matched = T.interval_residual(base, brighter)
    assert log_gain == pytest.approx(np.log(1.1), abs=0.01)
    assert err < 0.01  # the gain explains the change: no structural error
    assert matched > 0.9


def test_labels_must_describe_the_clip():
    frames = image(clip(POSITIVES[0], frames=5))
    labels = MotionLabels((MOTION,) * 3, 4)
    with pytest.raises(ValueError, match=r"AP_TemporalGate\.labels: describe 4 frames but frames has 5"):
        TemporalGate().check(frames, D.warp_error_floor, D.warp_error_k, D.max_median_warp_error, D.max_flicker,
                             labels=labels)


def test_node_needs_two_frames_and_passes_frames_through():
    node = TemporalGate()
    with pytest.raises(ValueError, match=r"AP_TemporalGate\.frames: 1 frame\(s\), at least 2 needed"):
        node.check(torch.zeros(1, 16, 16, 3), D.warp_error_floor, D.warp_error_k, D.max_median_warp_error,
                   D.max_flicker)
    frames = image(clip(POSITIVES[0], frames=6))
    out, result, _ = node.check(frames, D.warp_error_floor, D.warp_error_k, D.max_median_warp_error, D.max_flicker)
    assert out is frames and result.name == "temporal"


@pytest.mark.parametrize("shape", [(3, 40, 400, 3), (3, 20, 64, 3), (3, 64, 300, 3)])
def test_frames_too_small_or_thin_for_optical_flow_are_an_input_error(shape):
    # OpenCV's DIS flow crashes the whole process on such images (e.g. 20x160 thumbnails)
    with pytest.raises(ValueError, match=r"AP_TemporalGate\.frames: frames of \d+x\d+ are too small or too thin"):
        TemporalGate().check(torch.rand(*shape), D.warp_error_floor, D.warp_error_k, D.max_median_warp_error,
                             D.max_flicker)
