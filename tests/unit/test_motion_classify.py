"""core.motion on small synthetic cels: holds, motion, partial changes, cuts, flashes, and
the same labels from uint8 arrays and from ComfyUI float tensors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from anime_pipeline.core import motion
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.imaging import from_uint8

H, W = 180, 320


def _cel(seed: int, dx: int = 0, mouth: int = 0) -> np.ndarray:
    """Flat colours and dark outlines (anime-like); ``dx`` moves the character, ``mouth`` flaps."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = rng.integers(60, 220, 3)
    cv2.rectangle(img, (0, 120), (W, H), tuple(int(c) for c in rng.integers(40, 200, 3)), -1)
    for _ in range(4):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y, r = int(rng.integers(40, 280)), int(rng.integers(30, 150)), int(rng.integers(12, 40))
        cv2.circle(img, (x, y), r, c, -1, cv2.LINE_AA)
        cv2.circle(img, (x, y), r, (20, 20, 20), 2, cv2.LINE_AA)
    cx = 150 + dx  # the character
    cv2.ellipse(img, (cx, 90), (30, 42), 0, 0, 360, (240, 200, 170), -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, 90), (30, 42), 0, 0, 360, (20, 20, 20), 2, cv2.LINE_AA)
    cv2.line(img, (cx - 8, 110), (cx + 8, 110 + mouth), (60, 20, 20), 2, cv2.LINE_AA)
    return img


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)


def _labels(frames) -> list[str]:
    return list(motion.classify(np.stack(frames)).labels)


def test_exact_and_compressed_repeats_are_holds():
    a = _cel(1)
    assert _labels([a, a.copy(), _jpeg(a, 85), _jpeg(a, 90), _jpeg(a, 80), _jpeg(a, 75)]) == ["hold"] * 5


def test_moving_character_and_mouth_flap_are_motion():
    assert _labels([_cel(1), _cel(1, dx=3), _cel(1, dx=3, mouth=6)]) == ["motion", "motion"]


def test_new_shot_is_a_cut_and_a_flash_is_two_cuts():
    a, b = _cel(1), _cel(2)
    white = np.full_like(a, 235)
    labels = motion.classify(np.stack([a, a, b, b, white, b]))
    assert labels.labels == ("hold", "cut", "hold", "cut", "cut")
    assert motion.flash_frames(labels) == [4]
    assert motion.is_cut(a, b) and not motion.is_cut(a, _cel(1, dx=4))


def test_scores_thresholds_and_tensor_input():
    frames = np.stack([_cel(1), _cel(1), _cel(1, dx=4), _cel(3)])
    labels = motion.classify(frames)
    assert isinstance(labels, MotionLabels) and labels.n_frames == 4
    assert set(labels.scores) == set(motion.SCORE_NAMES)
    assert all(len(v) == 3 for v in labels.scores.values())
    assert labels.scores["detail_change"][0] == 0.0
    assert np.isnan(labels.scores["unexplained"][0])  # not evaluated below the colour gate
    assert labels.thresholds["hold_threshold"] == motion.Thresholds().hold_threshold
    assert motion.classify(from_uint8(frames)).labels == labels.labels


def test_adaptive_mode_holds_boiling_repeats_that_the_fixed_rule_calls_motion():
    rng = np.random.default_rng(0)
    base = _cel(4)

    def boil():  # independent noise and sub-pixel jitter on every repeat of one drawing
        m = np.float32([[1, 0, rng.uniform(-0.4, 0.4)], [0, 1, rng.uniform(-0.4, 0.4)]])
        x = cv2.warpAffine(base.astype(np.float32), m, (W, H), borderMode=cv2.BORDER_REFLECT)
        low = cv2.resize(rng.normal(0, 6, (H // 8, W // 8)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
        return np.clip(x + low[..., None] + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)

    frames = np.stack([boil() for _ in range(6)] + [_cel(4, dx=6)] + [boil() for _ in range(5)])
    fixed = motion.classify(frames)
    adaptive = motion.classify(frames, motion.Thresholds(adaptive_holds=True))
    assert fixed.labels.count("hold") == 0
    assert adaptive.labels == ("hold",) * 5 + ("motion", "motion") + ("hold",) * 4
    assert adaptive.thresholds["hold_limit"] > motion.Thresholds().hold_threshold


def test_progress_and_analysis_size():
    n = 2 * motion.WORKERS * motion.CHUNK + 1  # long enough for full chunks
    size = motion.chunk_size(n)
    assert size == motion.CHUNK and motion.MIN_CHUNK <= motion.chunk_size(20) < motion.CHUNK
    for frames in (96, 240, 481, 1000):  # whole rounds on short clips: no lone last chunk
        chunks = math.ceil((frames - 1) / motion.chunk_size(frames))
        assert chunks % motion.WORKERS == 0 or motion.chunk_size(frames) == motion.MIN_CHUNK, frames
    calls = []
    labels = motion.classify(np.stack([_cel(1)] * n), progress=lambda d, t: calls.append((d, t)))
    assert labels.labels == ("hold",) * (n - 1)  # chunks join without a gap or overlap
    assert calls == [(min(n, start + size + 1), n) for start in range(0, n - 1, size)]
    assert motion.analysis_size(720, 1280) == (90, 160)
    assert motion.analysis_size(832, 480) == (160, 92)
    assert motion.analysis_size(60, 80) == (60, 80)


def test_adaptive_factor_shrinks_with_the_analysis_downscale():
    assert motion.analysis_downscale(240, 320) == 2.0 and motion.analysis_downscale(60, 80) == 2.0
    assert motion.analysis_downscale(720, 1280) == 8.0
    t = motion.Thresholds(adaptive_holds=True, adaptive_factor=4.5)
    assert motion.effective_adaptive_factor(t, 2.0) == 4.5
    assert motion.effective_adaptive_factor(t, 8.0) == pytest.approx(2.25)
    # the same noisy held drawing, small and large: the large clip's limit uses the smaller factor
    rng = np.random.default_rng(3)
    small = np.stack([np.clip(_cel(2).astype(float) + rng.normal(0, 3, _cel(2).shape), 0, 255).astype(np.uint8)
                      for _ in range(6)])
    large = np.stack([cv2.resize(f, (1280, 960), interpolation=cv2.INTER_NEAREST) for f in small])
    for frames, factor in ((small, 4.5), (large, 2.25)):
        used = motion.classify(frames, t).thresholds
        assert used["adaptive_factor_effective"] == pytest.approx(factor)
        scores = motion.interval_scores(frames, t)
        floor = np.percentile(scores["median_change"], motion.NOISE_FLOOR_PERCENTILE)
        assert used["hold_limit"] == pytest.approx(max(3.5, factor * floor), rel=1e-5)


@pytest.mark.parametrize("n", [81, 49, 2 * motion.WORKERS * motion.CHUNK + 1, 50, 2])
def test_every_interval_is_scored(n):
    # 81 frames (a WAN clip) is 4 chunks of 20 intervals on 2 workers: a chunk boundary
    # falling on the last frame once left the last interval unscored (NaN, labelled motion).
    frames = np.stack([_cel(1)] * n)
    labels = motion.classify(frames)
    assert labels.labels == ("hold",) * (n - 1)
    assert all(np.isfinite(labels.scores["detail_change"])) and all(np.isfinite(labels.scores["color_shift"]))


@pytest.mark.parametrize("bad", [np.zeros((4, 5, 3), np.uint8)])
def test_tiny_frames_still_classify(bad):
    assert motion.classify(np.stack([bad, bad])).labels == ("hold",)


def test_opencv_threads_are_single_during_analysis_and_restored(monkeypatch):
    seen = []
    score_chunk = motion._score_chunk

    def spy(*args):
        seen.append(cv2.getNumThreads())
        return score_chunk(*args)

    monkeypatch.setattr(motion, "_score_chunk", spy)
    monkeypatch.setattr(motion, "WORKERS", 2)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        motion.classify(np.stack([_cel(1)] * 40))
        assert seen and set(seen) == {1}  # nested OpenCV pools off inside the workers
        assert cv2.getNumThreads() == 3  # and the caller's setting is back
    finally:
        cv2.setNumThreads(before)
