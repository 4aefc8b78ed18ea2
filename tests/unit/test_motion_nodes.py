"""AP_MotionGate and AP_AnimeRetime as ComfyUI calls them: outputs, JSON summaries, and
clear errors that name the offending input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.imaging import from_uint8
from anime_pipeline.nodes.motion import NODE_CLASS_MAPPINGS, AnimeRetime, LoadInterpolator, MotionGate
from tests.unit.test_motion_classify import _cel


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """hold, motion, cut, hold (5 frames)."""
    return from_uint8(np.stack([_cel(1), _cel(1), _cel(1, dx=5), _cel(2), _cel(2)]))


def _gate(frames, **kw):
    args = dict(cut_color=5.0, cut_residual=0.63, hold_threshold=3.5, adaptive_holds=False, adaptive_factor=4.5)
    return MotionGate().gate(frames, **{**args, **kw})


def test_registered_ids():
    assert NODE_CLASS_MAPPINGS == {"AP_MotionGate": MotionGate, "AP_AnimeRetime": AnimeRetime,
                                   "AP_LoadInterpolator": LoadInterpolator}


def test_gate_outputs_labels_and_summary(clip):
    labels, summary = _gate(clip)
    assert isinstance(labels, MotionLabels) and labels.labels == ("hold", "motion", "cut", "hold")
    report = json.loads(summary)
    assert report["counts"] == {"cut": 1, "hold": 2, "motion": 1}
    assert report["cuts"] == [2] and report["flash_frames"] == []
    assert report["thresholds"]["hold_limit"] == 3.5
    assert len(report["scores"]["color_shift"]) == 4 and report["scores"]["unexplained"][0] is None


def test_retime_16_to_24_with_and_without_labels(clip):
    labels, _ = _gate(clip)
    frames, fps, summary = AnimeRetime().retime(clip, 16.0, 24.0, "keep_holds", labels)
    assert frames.shape == (7, *clip.shape[1:]) and fps == 24.0
    report = json.loads(summary)
    assert report["frames_out"] == 7 and report["ratio"] == "3/2" and report["interpolated"] == 1
    # interval 2 is the cut: output 4 sits at p = 8/3 (nearer frame 3), output 5 at 10/3
    assert torch.equal(frames[4], clip[3]) and torch.equal(frames[5], clip[3])
    again, _, _ = AnimeRetime().retime(clip, 16.0, 24.0, "keep_holds")
    assert torch.equal(again, frames)


def test_single_frame_clip_is_copied_with_a_note(clip):
    frames, fps, summary = AnimeRetime().retime(clip[:1], 16.0, 24.0, "smooth")
    assert torch.equal(frames, clip[:1]) and fps == 24.0
    assert "single-frame" in json.loads(summary)["notes"][0]


@pytest.mark.parametrize("call,match", [
    (lambda c: _gate(c[:1]), r"AP_MotionGate\.frames: 1 frame"),
    (lambda c: _gate(torch.where(torch.arange(5)[:, None, None, None] == 2, torch.nan, c)), r"frames: NaN.*\[2\]"),
    (lambda c: _gate(c, hold_threshold=-1.0), r"hold_threshold: must be a finite number >= 0"),
    (lambda c: AnimeRetime().retime(c, 0.0, 24.0, "keep_holds"), r"AP_AnimeRetime\.fps_in: .*> 0, got 0.0"),
    (lambda c: AnimeRetime().retime(c, 16.0, -24.0, "keep_holds"), r"fps_out: .*got -24.0"),
    (lambda c: AnimeRetime().retime(c, 16.0, 24.0, "blend"), r"mode: must be one of"),
    (lambda c: AnimeRetime().retime(c[:4], 16.0, 24.0, "keep_holds", _gate(c)[0]),
     r"AP_AnimeRetime\.labels: describe 5 frames but frames has 4"),
    (lambda c: AnimeRetime().retime(c, 16.0, 24.0, "keep_holds", ["hold"] * 4), r"labels: expected AP_MOTION_LABELS"),
    (lambda c: AnimeRetime().retime(c.numpy(), 16.0, 24.0, "keep_holds"), r"frames: expected an IMAGE tensor"),
])
def test_bad_input_names_the_input(clip, call, match):
    with pytest.raises(ValueError, match=match):
        call(clip)
