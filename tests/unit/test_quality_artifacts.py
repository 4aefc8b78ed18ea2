"""Artifact gate: real WAN clips pass; black, blank, blown, crushed, blurred, NaN frames and
a frozen clip are caught at the right frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.quality import artifacts as A
from devkit import calibration as cal
from anime_pipeline.nodes.quality import ArtifactGate
from tests.unit.quality_clips import POSITIVES, clip, image

K = 12  # where negatives go


@pytest.mark.parametrize("name", POSITIVES)
def test_real_clips_pass(name):
    result = A.artifact_gate(image(clip(name)))
    assert result.passed, result.reasons
    assert result.failed_frames == [] and result.reasons == []


@pytest.mark.parametrize("name", POSITIVES)
@pytest.mark.parametrize("kind, build", [
    ("black", lambda c: cal.insert_frame(c, K, cal.black_frame(c[0]))),
    ("blank", lambda c: cal.insert_frame(c, K, cal.blank_frame(c[0]))),
    ("blown", lambda c: cal.insert_frame(c, K, cal.exposure(c[K], 1.0))),
    ("crushed", lambda c: cal.insert_frame(c, K, cal.exposure(c[K], -1.5))),
    ("blurred", lambda c: cal.replace_frame(c, K, cal.blur(c[K], 1.0))),
])
def test_inserted_bad_frame_is_caught_exactly(name, kind, build):
    result = A.artifact_gate(image(build(clip(name))))
    assert not result.passed
    assert result.failed_frames == [K]
    assert result.metrics[f"{kind}_frames"] == [K]


@pytest.mark.parametrize("name", POSITIVES)
def test_frozen_clip_fails_only_when_motion_was_asked_for(name):
    still = cal.frozen(clip(name))
    result = A.artifact_gate(image(still))
    assert not result.passed and result.metrics["frozen"]
    assert result.metrics["max_motion"] < A.ArtifactThresholds().frozen_motion
    assert result.failed_frames == list(range(len(still)))
    assert A.artifact_gate(image(still), expect_motion=False).passed


def test_nan_and_inf_frames_are_reported_not_raised():
    frames = image(clip(POSITIVES[0]))
    frames[3, 10, 10, 1] = float("nan")
    frames[7, 0, 0, 0] = float("inf")
    result = A.artifact_gate(frames)
    assert result.metrics["nonfinite_frames"] == [3, 7]
    assert result.failed_frames == [3, 7]


def test_huge_finite_values_are_not_mistaken_for_inf():
    frames = torch.full((2, 8, 8, 3), 3e38)
    assert A.frame_stats(frames).finite.tolist() == [True, True]


def test_frame_statistics_match_constructed_values():
    # 4 frames of 8x8: left half luma 0, right half 1 -> dark 0.5, blown 0.5, std 0.5
    f = torch.zeros(4, 8, 8, 3)
    f[:, :, 4:] = 1.0
    f[3] += 0.0  # identical frames: no motion at all
    s = A.frame_stats(f)
    assert np.allclose(s.dark_fraction, 0.5) and np.allclose(s.blown_fraction, 0.5)
    assert np.allclose(s.crushed_fraction, 0.5) and np.allclose(s.luma_std, 0.5, atol=1e-6)
    assert np.allclose(s.motion, 0.0)


def test_neighbour_median_excludes_the_frame_and_unusable_ones():
    values = np.array([1.0, 2.0, 100.0, 3.0, 4.0])
    usable = np.array([True, True, True, False, True])
    out = A.neighbour_median(values, usable, radius=2)
    assert out[2] == np.median([1.0, 2.0, 4.0])  # itself and the unusable frame 3 left out
    assert out[0] == np.median([2.0, 100.0])


def test_thresholds_are_honoured():
    c = cal.insert_frame(clip(POSITIVES[0]), K, cal.exposure(clip(POSITIVES[0])[K], 1.0))
    loose = A.ArtifactThresholds(max_exposure_jump=5.0, max_clipped_increase=1.0)
    assert A.artifact_gate(image(c), loose).passed


def test_node_passes_frames_through_and_reports_json():
    frames = image(clip(POSITIVES[0]))
    d = A.ArtifactThresholds()
    out_frames, result, text = ArtifactGate().check(frames, d.black_fraction, d.min_luma_std, d.max_exposure_jump,
                                                    d.max_clipped_increase, d.min_sharpness_ratio, d.min_sharpness,
                                                    d.frozen_motion, True)
    assert out_frames is frames and result.passed
    assert '"name": "artifact"' in text


def test_node_rejects_an_empty_batch_by_name():
    d = A.ArtifactThresholds()
    with pytest.raises(ValueError, match=r"AP_ArtifactGate\.frames: empty batch"):
        ArtifactGate().check(torch.zeros(0, 8, 8, 3), d.black_fraction, d.min_luma_std, d.max_exposure_jump,
                             d.max_clipped_increase, d.min_sharpness_ratio, d.min_sharpness, d.frozen_motion, True)
