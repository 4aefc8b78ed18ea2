"""Seam gate's analysis window at the clip's ends: ``judge_seam`` analyses only the frames
within ``WINDOW`` intervals of the seam. Whatever the seam's position (first interval, last
interval, just inside or outside a window's reach of either end) and the clip length (2 frames
up to 81), the seam interval it judges must be ``s-1 -> s`` and its neighbours exactly the
intervals within ``WINDOW`` of it inside the clip, with the numbers a whole-clip computation
gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.motion import is_cut
from anime_pipeline.core.quality import seam as S
from anime_pipeline.core.quality import temporal as T
from devkit.synthetic_clips import panning_texture

W = S.WINDOW
H_, W_ = 64, 96


def _clip(n: int) -> torch.Tensor:
    """A soft texture panning 1 px per frame, with a per-frame brightness wobble so that
    every interval has its own residuals."""
    gains = 1 + 0.03 * np.sin(np.arange(n) * 1.7)
    return torch.from_numpy(np.clip(panning_texture(n, H_, W_, seed=7) * gains[:, None, None, None], 0, 1)
                            .astype(np.float32))


def _seams(n: int) -> list[int]:
    cand = {1, 2, W, W + 1, W + 2, n // 2, n - W - 2, n - W - 1, n - W, n - 2, n - 1}
    return sorted(s for s in cand if 1 <= s <= n - 1)


@pytest.mark.parametrize("n", [2, 3, 5, W + 1, W + 2, 2 * W + 1, 2 * W + 2, 17, 81])
def test_seam_window_matches_the_whole_clip(n):
    clip = _clip(n)
    small = T.analysis_frames(clip)  # every interval's residuals, measured on the whole clip
    res = np.array([T.interval_residual(small[i], small[i + 1]) for i in range(n - 1)])
    for s in _seams(n):
        m, _ = S.judge_seam(clip, s, S.SeamThresholds())
        k = s - 1
        nb = [i for i in range(max(0, k - W), min(n - 2, k + W) + 1) if i != k]
        assert m["seam_index"] == s
        assert m["neighbour_intervals"] == len(nb) == min(W, k) + min(W, n - 2 - k), (n, s)
        assert m["warp_error"] == pytest.approx(round(res[k, 0], 5), abs=2e-5), (n, s)
        med = float(np.median(res[nb, 0])) if nb else 0.0
        assert m["neighbour_warp_error"] == pytest.approx(round(med, 5), abs=2e-5), (n, s)
        luma = res[k, 2] - (float(np.median(res[nb, 2])) if nb else 0.0)
        assert m["luma_jump"] == pytest.approx(round(luma, 3), abs=2e-3), (n, s)
        assert m["is_cut"] == bool(is_cut(small[k], small[k + 1]))


def test_a_luma_step_is_found_at_the_first_and_the_last_interval():
    """A 6/255 step entering the seam frame is judged at the seam, not at a neighbour."""
    n = 17
    for s in (1, n - 1, n // 2):
        frames = _clip(n).clone()
        frames[s:] = (frames[s:] + 6 / 255).clamp(0, 1)
        m, problems = S.judge_seam(frames, s, S.SeamThresholds())
        assert m["luma_jump"] > S.SeamThresholds().max_luma_jump, (s, m)
        assert any("luma jump" in p for p in problems)


@pytest.mark.parametrize("n,s", [(17, 0), (17, 17), (17, -1), (2, 0), (2, 2)])
def test_a_seam_outside_the_clip_is_an_error_not_another_interval(n, s):
    """Seam 0 has no interval before it (it was judged as the last interval of its window,
    through index -1); seam n has no frame after it."""
    with pytest.raises(ValueError, match=rf"seam\(s\) \[{s}\] outside 1\.\.{n - 1} for {n} frames"):
        S.seam_gate(_clip(n), [s])
