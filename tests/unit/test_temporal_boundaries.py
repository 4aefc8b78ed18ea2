"""Temporal gate at the clip's ends and around cuts: every interval that is not a cut is
measured (first and last included), cut intervals are not, each measured interval has the
residuals of that pair measured alone, and the per-frame pulse covers every frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.contracts import CUT, MOTION, MotionLabels
from anime_pipeline.core.quality import temporal as T
from devkit.synthetic_clips import panning_texture

H_, W_ = 64, 96


def _clip(n: int) -> torch.Tensor:
    return torch.from_numpy(panning_texture(n, H_, W_, seed=11, low=0.2, high=0.8))


def _brute_pulses(g):
    n = len(g) + 1
    out = np.zeros(n)
    for t in range(1, n - 1):
        a, b = g[t - 1], g[t]
        if not (np.isnan(a) or np.isnan(b)):
            out[t] = max(0.0, max(min(a, -b), min(-a, b)))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 17])
def test_brightness_pulses_match_brute_force(n):
    rng = np.random.default_rng(n)
    g = rng.normal(0, 0.03, max(n - 1, 0))
    if n > 2:
        g[rng.integers(0, n - 1)] = np.nan
    p = T.brightness_pulses(g)
    assert p.shape == (n,) and np.isfinite(p).all()
    assert np.allclose(p, _brute_pulses(g))


@pytest.mark.parametrize("n", [2, 3, 5, 17, 33])
def test_every_non_cut_interval_is_measured_first_and_last_included(n):
    frames = _clip(n)
    small = T.analysis_frames(frames)
    cuts = sorted({0, n - 2} if n > 2 else set())
    labels = MotionLabels(tuple(CUT if i in cuts else MOTION for i in range(n - 1)), n)
    measured = [i for i in range(n - 1) if i not in cuts]
    res = T.residual_series(small, measured)
    assert len(res) == n - 1
    for i in range(n - 1):
        if i in cuts:
            assert np.isnan(res.warp_error[i]) and np.isnan(res.log_gain[i])
        else:
            alone = T.interval_residual(small[i], small[i + 1])
            assert np.isfinite(res.warp_error[i]) and res.warp_error[i] == alone[0], i
    result = T.temporal_gate(frames, labels=labels)
    assert result.metrics["cut_intervals"] == cuts and result.metrics["n_frames"] == n
    if measured:
        assert result.metrics["max_warp_error"] == round(float(max(res.warp_error[measured])), 5)


@pytest.mark.parametrize("n", [3, 17, 33])
def test_a_broken_last_frame_and_a_flash_before_it_are_caught(n):
    frames = _clip(n)
    broken = frames.clone()
    broken[-1] = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (H_, W_, 3)).astype(np.float32))
    labels = MotionLabels((MOTION,) * (n - 1), n)
    result = T.temporal_gate(broken, labels=labels)
    assert not result.passed and n - 1 in result.failed_frames, result.metrics
    if n >= 5:  # the median of the intervals is still a good one: the last interval alone is unstable
        assert result.metrics["unstable_intervals"] == [n - 2], result.metrics
    flash = frames.clone()
    flash[n - 2] = (flash[n - 2] * 1.06).clamp(0, 1)  # the last frame that has a successor
    result = T.temporal_gate(flash, labels=labels)
    assert result.metrics["flicker_frames"] == [n - 2], result.metrics
