"""Cut / hold / motion classification of the intervals between consecutive frames.

Every frame is reduced once to a small analysis thumbnail (long side
``ANALYSIS_SIZE`` px); each interval ``i -> i+1`` then gets three scores:

``detail_change`` (hold score, 8-bit levels)
    The largest 8x8-block mean of the high-passed luma difference
    (``d - GaussianBlur(d, 2)``). High-passing removes gain drift and
    low-frequency "boiling"; the block maximum keeps small local changes (a
    mouth flap covering 2 % of the frame) visible.
``color_shift`` (cut score, 8-bit levels)
    Earth mover's distance between the Y, U and V histograms of the two
    frames (mean over the planes): how far, on average, the colours would have
    to move. Robust to noise and gain, large when the shot changes.
``unexplained`` (cut score, 0..~1.2)
    Mean residual after warping with dense optical flow (DIS), divided by the
    frames' contrast: ~0 when motion explains the change, ~1 for unrelated
    frames. Only evaluated where ``color_shift >= cut_color`` (NaN elsewhere).

Rules (defaults measured on the frozen ground truth's tuning split, see
``tests/groundtruth``):

* **cut**: ``color_shift >= cut_color and unexplained >= cut_residual``.
  Flash frames need no special case: both intervals around a flash are cuts
  (never blended), and :func:`flash_frames` lists them.
* **hold**: not a cut and ``detail_change < hold_threshold``.
* **adaptive holds** (opt-in, for generated video whose held drawings carry
  independent per-frame noise): whole-frame sub-pixel jitter (below
  ``JITTER_LIMIT`` thumbnail px) is compensated and the threshold becomes
  ``max(hold_threshold, adaptive_factor * noise_floor)``, with the clip's noise
  floor taken as the 2nd percentile of the per-interval median block
  difference. Opt-in because on noisy clips without holds it labels the
  slowest motion as hold more often than the fixed rule.
* **motion**: everything else.

Frames may be ``uint8`` numpy ``[N,H,W,3]`` or a ComfyUI IMAGE tensor (float
0..1); tensors are reduced chunk by chunk, never converted whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .contracts import CUT, HOLD, MOTION, MotionLabels
from .flow import compute_flow, warp

ANALYSIS_SIZE = 160  # long side of the analysis thumbnail, px
BLOCK = 8  # block size of detail_change, thumbnail px
HIGHPASS_SIGMA = 2.0
HIST_BINS = 64
JITTER_LIMIT = 0.5  # thumbnail px (~0.3 % of the frame width)
NOISE_FLOOR_PERCENTILE = 2
CONTRAST_EPS = 4.0
SCORE_NAMES = ("detail_change", "color_shift", "unexplained")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds (defaults measured on the tuning split of the ground truth)."""

    cut_color: float = 5.0
    cut_residual: float = 0.63
    hold_threshold: float = 3.5
    adaptive_holds: bool = False
    adaptive_factor: float = 4.5

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Frame:
    """What one frame contributes to its two intervals."""

    y: np.ndarray  # float32 luma thumbnail
    hp: np.ndarray  # high-passed luma
    cdf: np.ndarray  # [3, HIST_BINS] cumulative YUV histograms
    contrast: float  # mean |y - mean(y)|


def analysis_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the analysis thumbnail for frames of this size."""
    s = min(1.0, ANALYSIS_SIZE / max(height, width))
    return max(BLOCK, round(height * s)), max(BLOCK, round(width * s))


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """``uint8`` RGB analysis thumbnail of a ``uint8`` or float (0..1) ``[H,W,3]`` frame."""
    th, tw = analysis_size(*frame.shape[:2])
    if frame.shape[:2] != (th, tw):
        factor = frame.shape[1] / tw
        # INTER_AREA is exact and fast up to 2x; beyond, bilinear sampling averages 2x2
        # source pixels per tap at a fraction of the cost of a full area average.
        method = cv2.INTER_AREA if factor <= 2.01 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (tw, th), interpolation=method)
    if frame.dtype != np.uint8:
        frame = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return frame


def _describe(thumb: np.ndarray) -> _Frame:
    y = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    yuv = cv2.cvtColor(thumb, cv2.COLOR_RGB2YUV)
    hists = np.stack([cv2.calcHist([yuv], [c], None, [HIST_BINS], [0, 256]).ravel() for c in range(3)])
    cdf = np.cumsum(hists / hists.sum(axis=1, keepdims=True), axis=1)
    hp = y - cv2.GaussianBlur(y, (0, 0), HIGHPASS_SIGMA)
    return _Frame(y, hp, cdf, float(np.abs(y - y.mean()).mean()))


def _block_means(x: np.ndarray) -> np.ndarray:
    h, w = (x.shape[0] // BLOCK) * BLOCK, (x.shape[1] // BLOCK) * BLOCK
    return cv2.resize(x[:h, :w], (w // BLOCK, h // BLOCK), interpolation=cv2.INTER_AREA)


def _global_jitter_compensated(a: _Frame, b: _Frame) -> np.ndarray:
    """High-passed difference after removing a whole-frame sub-pixel shift (first-order)."""
    d = b.y - a.y
    mid = 0.5 * (a.y + b.y)
    gx = cv2.Sobel(mid, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(mid, cv2.CV_32F, 0, 1, ksize=3) / 8
    m = np.array([[np.vdot(gx, gx), np.vdot(gx, gy)], [np.vdot(gx, gy), np.vdot(gy, gy)]], np.float64)
    r = -np.array([np.vdot(gx, d), np.vdot(gy, d)], np.float64)
    shift = np.linalg.solve(m + 1e-3 * np.eye(2), r)
    if np.abs(shift).max() <= JITTER_LIMIT:
        d = d + gx * np.float32(shift[0]) + gy * np.float32(shift[1])
    return d - cv2.GaussianBlur(d, (0, 0), HIGHPASS_SIGMA)


def color_shift(a: _Frame, b: _Frame) -> float:
    """Mean over Y, U, V of the histogram earth mover's distance, in 8-bit levels."""
    return float(np.abs(a.cdf - b.cdf).sum(axis=1).mean() * (256 / HIST_BINS))


def unexplained(a: _Frame, b: _Frame) -> float:
    """Flow-compensated residual relative to the frames' contrast (0 = explained by motion)."""
    ya, yb = a.y.astype(np.uint8), b.y.astype(np.uint8)
    f = compute_flow(ya, yb, scale=1.0, preset="ultrafast")
    residual = float(np.abs(warp(b.y, f) - a.y).mean())
    return residual / (0.5 * (a.contrast + b.contrast) + CONTRAST_EPS)


def _iter_thumbnails(frames, chunk: int = 16):
    """Thumbnails of numpy ``uint8`` frames or an IMAGE tensor, chunk by chunk."""
    if isinstance(frames, np.ndarray):
        for f in frames:
            yield thumbnail(f)
        return
    for start in range(0, frames.shape[0], chunk):
        block = frames[start : start + chunk].detach().cpu().float().numpy()
        for f in block:
            yield thumbnail(f)


def interval_scores(
    frames,
    thresholds: Thresholds = Thresholds(),
    *,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Per-interval scores (see the module doc) plus ``median_change`` (adaptive mode only)."""
    n = len(frames)
    out = {name: np.full(max(n - 1, 0), np.nan, np.float32) for name in SCORE_NAMES}
    median = np.full(max(n - 1, 0), np.nan, np.float32)
    prev = None
    for i, thumb in enumerate(_iter_thumbnails(frames)):
        cur = _describe(thumb)
        if prev is not None:
            k = i - 1
            hp = _global_jitter_compensated(prev, cur) if thresholds.adaptive_holds else cur.hp - prev.hp
            blocks = _block_means(np.abs(hp))
            out["detail_change"][k] = blocks.max()
            if thresholds.adaptive_holds:
                median[k] = np.median(blocks)
            out["color_shift"][k] = color_shift(prev, cur)
            if out["color_shift"][k] >= thresholds.cut_color:
                out["unexplained"][k] = unexplained(prev, cur)
        prev = cur
        if progress is not None:
            progress(i + 1, n)
    if thresholds.adaptive_holds:
        out["median_change"] = median
    return out


def decide(scores: dict[str, np.ndarray], thresholds: Thresholds = Thresholds()) -> tuple[list[str], float]:
    """Labels from :func:`interval_scores`; also returns the hold threshold actually used."""
    cut = (scores["color_shift"] >= thresholds.cut_color) & (np.nan_to_num(scores["unexplained"]) >= thresholds.cut_residual)
    hold_limit = thresholds.hold_threshold
    if thresholds.adaptive_holds and (~cut).any():
        floor = float(np.percentile(scores["median_change"][~cut], NOISE_FLOOR_PERCENTILE))
        hold_limit = max(hold_limit, thresholds.adaptive_factor * floor)
    hold = ~cut & (scores["detail_change"] < hold_limit)
    labels = [CUT if c else HOLD if h else MOTION for c, h in zip(cut, hold)]
    return labels, hold_limit


def classify(frames, thresholds: Thresholds = Thresholds(), *, progress: Progress | None = None) -> MotionLabels:
    """Label every interval of a clip (``uint8 [N,H,W,3]`` array or IMAGE tensor)."""
    scores = interval_scores(frames, thresholds, progress=progress)
    labels, hold_limit = decide(scores, thresholds)
    used = {**thresholds.as_dict(), "hold_limit": hold_limit}
    used["adaptive_holds"] = float(thresholds.adaptive_holds)
    return MotionLabels(
        labels=tuple(labels),
        n_frames=len(frames),
        scores={k: tuple(_finite_or_nan(v) for v in scores[k]) for k in SCORE_NAMES},
        thresholds=used,
    )


def is_cut(a: np.ndarray, b: np.ndarray, thresholds: Thresholds = Thresholds()) -> bool:
    """The cut rule on one pair of ``uint8`` (or float 0..1) ``[H,W,3]`` frames."""
    fa, fb = _describe(thumbnail(a)), _describe(thumbnail(b))
    return color_shift(fa, fb) >= thresholds.cut_color and unexplained(fa, fb) >= thresholds.cut_residual


def flash_frames(labels) -> list[int]:
    """Frames with a cut on both sides (one-frame flashes or inserts)."""
    seq = labels.labels if isinstance(labels, MotionLabels) else labels
    return [i for i in range(1, len(seq)) if seq[i - 1] == CUT and seq[i] == CUT]


def _finite_or_nan(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.nan
