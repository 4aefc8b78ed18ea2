"""Artifact gate at the clip's ends: per-frame statistics, the per-interval motion and the
neighbour window (``NEIGHBOURS`` frames each side) must cover every frame and interval,
first and last included, for clips of 1-2 frames, lengths around the window and WAN
lengths, and equal what each frame (or pair) measured on its own gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.quality import artifacts as A

R = A.NEIGHBOURS
LENGTHS = [1, 2, 3, R, R + 1, R + 2, 2 * R, 2 * R + 1, 2 * R + 2, 17, 81]


def _frames(n: int) -> torch.Tensor:
    rng = np.random.default_rng(n)
    base = rng.uniform(0.2, 0.8, (32, 48, 3)).astype(np.float32)
    frames = np.stack([np.roll(base, 2 * i, axis=1) * (0.9 + 0.2 * rng.random()) for i in range(n)])
    return torch.from_numpy(np.clip(frames, 0, 1).astype(np.float32))


def _brute_neighbour_median(values, usable, radius):
    out = []
    for i in range(len(values)):
        nb = [values[j] for j in range(len(values)) if j != i and abs(j - i) <= radius and usable[j]]
        out.append(np.median(nb) if nb else values[i])
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("n", LENGTHS)
def test_neighbour_median_matches_brute_force(n):
    rng = np.random.default_rng(100 + n)
    values = rng.normal(size=n)
    for usable in (np.ones(n, bool), rng.random(n) < 0.6, np.arange(n) % 2 == 0,
                   np.r_[False, np.ones(max(n - 2, 0), bool), False][:n]):
        out = A.neighbour_median(values, usable)
        assert out.shape == (n,) and np.isfinite(out).all()
        assert np.array_equal(out, _brute_neighbour_median(values, usable, R)), usable


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("broken", ["none", "first", "last", "middle"])
def test_frame_stats_cover_every_frame_and_interval(n, broken):
    frames = _frames(n)
    bad = {"none": None, "first": 0, "last": n - 1, "middle": n // 2}[broken]
    if bad is not None:
        frames[bad, 3, 5, 1] = float("nan")
    s = A.frame_stats(frames)
    assert s.motion.shape == (max(n - 1, 0),)
    for name in ("finite", "mean_luma", "luma_std", "dark_fraction", "blown_fraction", "crushed_fraction",
                 "sharpness"):
        assert getattr(s, name).shape == (n,), name
    for i in range(n):
        one = A.frame_stats(frames[i:i + 1])
        assert s.finite[i] == (i != bad)
        for name in ("mean_luma", "luma_std", "sharpness"):
            a, b = getattr(s, name)[i], getattr(one, name)[0]
            assert (np.isnan(a) and np.isnan(b)) if i == bad else a == b, (name, i)
    for i in range(n - 1):
        pair = A.frame_stats(frames[i:i + 2]).motion[0]
        if bad in (i, i + 1):
            assert np.isnan(s.motion[i]) and np.isnan(pair)
        else:
            assert np.isfinite(s.motion[i]) and s.motion[i] == pair, i


@pytest.mark.parametrize("n", [2, 3, R + 1, 17, 81])
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_broken_first_or_last_frame_is_caught(n, where):
    i = 0 if where == "first" else n - 1
    black = _frames(n)
    black[i] = 0.0
    result = A.artifact_gate(black)
    assert result.metrics["black_frames"] == [i] and i in result.failed_frames
    if n >= 3:  # with two frames each is the only neighbour of the other: both would be flagged
        bright = _frames(n)
        bright[i] = (bright[i] * 1.6).clamp(0, 1)
        result = A.artifact_gate(bright)
        assert result.metrics["blown_frames"] == [i], result.metrics
