"""Cut / hold / motion classification of the intervals between consecutive frames.

Every frame is reduced once to a small analysis thumbnail (long side
``ANALYSIS_SIZE`` px); each interval ``i -> i+1`` then gets three scores:

``detail_change`` (hold score, 8-bit levels)
    The largest 8x8-block mean of the high-passed luma difference
    (``d - lowpass(d)``, the low-pass being the 4x4-cell means bilinearly
    interpolated back: the same sigma ~2 px as a Gaussian, a quarter of the
    cost). High-passing removes gain drift and low-frequency "boiling"; the
    block maximum keeps small local changes (a mouth flap covering 2 % of the
    frame) visible.
``color_shift`` (cut score, 8-bit levels)
    Earth mover's distance between the Y, U and V histograms of the two
    frames (mean over the planes; histograms of the thumbnail at half size):
    how far, on average, the colours would have to move. Robust to noise and
    gain, large when the shot changes.
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
0..1). They are analysed in independent chunks of ``CHUNK`` frames on
``WORKERS`` threads; a tensor is converted one chunk at a time, never whole.

Entry points: :func:`classify` (labels + scores as :class:`MotionLabels`),
:func:`is_cut` (the cut rule on one pair, e.g. a seam between two renders),
:func:`interval_scores` / :func:`decide` (scores and rules separately) and
:func:`flash_frames`.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .contracts import CUT, HOLD, MOTION, MotionLabels
from .flow import compute_flow, warp

ANALYSIS_SIZE = 160  # long side of the analysis thumbnail, px
BLOCK = 8  # block size of detail_change, thumbnail px
LOWPASS_CELL = 4  # thumbnail px; the high-pass removes what varies slower than this
HIST_BINS = 64
JITTER_LIMIT = 0.5  # thumbnail px (~0.3 % of the frame width)
NOISE_FLOOR_PERCENTILE = 2
CONTRAST_EPS = 4.0
CHUNK = 32  # frames analysed together (bounded working memory)
WORKERS = max(1, min(4, os.cpu_count() or 1))
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
    """Descriptors of one frame, computed once and shared by its two intervals."""

    y: np.ndarray  # float32 [th, tw] luma thumbnail
    hp: np.ndarray  # float32 high-passed luma, cropped to whole BLOCKs
    cdf: np.ndarray  # float32 [3, HIST_BINS] cumulative Y, U, V histograms


def analysis_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the analysis thumbnail for frames of this size."""
    s = min(1.0, ANALYSIS_SIZE / max(height, width))
    return max(BLOCK, round(height * s)), max(BLOCK, round(width * s))


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """``uint8`` RGB analysis thumbnail ``[th, tw, 3]`` of a ``uint8`` or float (0..1) frame ``[H, W, 3]``."""
    h, w = frame.shape[:2]
    th, tw = analysis_size(h, w)
    if (th, tw) == (h, w):
        out = np.array(frame, copy=True)
    else:
        # INTER_AREA is exact and fast up to 2x; beyond, bilinear sampling averages 2x2
        # source pixels per tap at a fraction of the cost of a full area average.
        method = cv2.INTER_AREA if w / tw <= 2.01 else cv2.INTER_LINEAR
        out = cv2.resize(frame, (tw, th), interpolation=method)
    if out.dtype != np.uint8:
        out = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def thumbnails(frames) -> np.ndarray:
    """:func:`thumbnail` of every frame of ``[m, H, W, 3]`` frames, stacked."""
    return np.stack([thumbnail(_frame_array(frames, j)) for j in range(len(frames))])


def _frame_array(frames, index: int) -> np.ndarray:
    """Frame ``index`` as numpy: a ``uint8``/float array row, or a ComfyUI IMAGE tensor's frame
    (a view for a CPU float32 tensor; one frame is converted at a time, never the clip)."""
    frame = frames[index]
    if isinstance(frame, np.ndarray):
        return frame
    return frame.detach().cpu().float().numpy()


def _describe(frame: np.ndarray) -> _Frame:
    """Thumbnail and descriptors of one frame. Working arrays are single small thumbnails
    (tens of kB): they stay in cache and never touch fresh memory, which on a 2-core VM cost
    more in page faults than the arithmetic did when whole chunks were processed at once."""
    thumb = thumbnail(frame)
    th, tw = thumb.shape[:2]
    y = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Histograms of a half-size thumbnail: the same distances to within 0.05 level.
    yuv = cv2.cvtColor(cv2.resize(thumb, ((tw + 1) // 2, (th + 1) // 2), interpolation=cv2.INTER_AREA),
                       cv2.COLOR_RGB2YUV)
    cdf = np.empty((3, HIST_BINS), np.float32)
    for c in range(3):
        cdf[c] = cv2.calcHist([yuv], [c], None, [HIST_BINS], [0, 256]).ravel()
    np.cumsum(cdf, axis=1, out=cdf)
    cdf /= np.float32(yuv.shape[0] * yuv.shape[1])
    return _Frame(y, _highpass(_block_crop(y)), cdf)


def _block_crop(x: np.ndarray) -> np.ndarray:
    """``x`` cropped to whole ``BLOCK`` x ``BLOCK`` blocks (the part the block scores use)."""
    h, w = x.shape[:2]
    return x[: h - h % BLOCK, : w - w % BLOCK]


def _highpass(x: np.ndarray) -> np.ndarray:
    """``x`` minus its low-pass: the ``LOWPASS_CELL`` x ``LOWPASS_CELL`` cell means of float32
    ``x`` (sides multiples of ``BLOCK``) bilinearly interpolated back to full size."""
    h, w = x.shape
    cells = cv2.resize(x, (w // LOWPASS_CELL, h // LOWPASS_CELL), interpolation=cv2.INTER_AREA)
    return cv2.subtract(x, cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR))


def _block_means(x: np.ndarray) -> np.ndarray:
    """Means of the ``BLOCK`` x ``BLOCK`` blocks of float32 ``[h, w]`` (partial blocks dropped):
    one exact area resize of the frame cropped to whole blocks."""
    x = _block_crop(x)
    return cv2.resize(x, (x.shape[1] // BLOCK, x.shape[0] // BLOCK), interpolation=cv2.INTER_AREA)


def _global_jitter_compensated(ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
    """High-passed difference after removing a whole-frame sub-pixel shift (first-order)."""
    d = yb - ya
    mid = 0.5 * (ya + yb)
    gx = cv2.Sobel(mid, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(mid, cv2.CV_32F, 0, 1, ksize=3) / 8
    m = np.array([[np.vdot(gx, gx), np.vdot(gx, gy)], [np.vdot(gx, gy), np.vdot(gy, gy)]], np.float64)
    r = -np.array([np.vdot(gx, d), np.vdot(gy, d)], np.float64)
    shift = np.linalg.solve(m + 1e-3 * np.eye(2), r)
    if np.abs(shift).max() <= JITTER_LIMIT:
        d = d + gx * np.float32(shift[0]) + gy * np.float32(shift[1])
    return _highpass(np.ascontiguousarray(_block_crop(d)))


def color_shift(cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
    """Mean over Y, U, V of the histogram earth mover's distance, in 8-bit levels."""
    return np.abs(cdf_a - cdf_b).sum(axis=-1).mean(axis=-1) * (256 / HIST_BINS)


def unexplained(ya: np.ndarray, yb: np.ndarray) -> float:
    """Flow-compensated residual relative to the frames' contrast (0 = explained by motion)."""
    f = compute_flow(ya.astype(np.uint8), yb.astype(np.uint8), scale=1.0, preset="ultrafast")
    residual = float(np.abs(warp(yb, f) - ya).mean())
    contrast = 0.5 * float(np.abs(ya - ya.mean()).mean() + np.abs(yb - yb.mean()).mean())
    return residual / (contrast + CONTRAST_EPS)


def _pair_scores(a: _Frame, b: _Frame, thresholds: Thresholds) -> dict[str, float]:
    """The scores of one interval from its two frames' descriptors."""
    shift = float(color_shift(a.cdf, b.cdf))
    if thresholds.adaptive_holds:
        blocks = _block_means(np.abs(_global_jitter_compensated(a.y, b.y)))
    else:
        blocks = _block_means(cv2.absdiff(a.hp, b.hp))
    out = {"color_shift": shift, "detail_change": float(blocks.max()),
           "unexplained": unexplained(a.y, b.y) if shift >= thresholds.cut_color else math.nan}
    if thresholds.adaptive_holds:
        out["median_change"] = float(np.median(blocks))
    return out


def _score_chunk(frames, start: int, thresholds: Thresholds) -> tuple[int, dict[str, np.ndarray]]:
    """Scores of the intervals ending in frames ``start + 1 .. start + CHUNK`` (the chunk plus
    the frame before it, so chunks are independent). Returns the first interval's index.
    Frames are streamed: only the previous frame's descriptors are kept."""
    first = max(0, start - 1)
    stop = min(len(frames), start + CHUNK)
    rows: list[dict[str, float]] = []
    prev = _describe(_frame_array(frames, first))
    for i in range(first + 1, stop):
        cur = _describe(_frame_array(frames, i))
        rows.append(_pair_scores(prev, cur, thresholds))
        prev = cur
    return first, {name: np.array([r[name] for r in rows], np.float32) for name in rows[0]}


def interval_scores(
    frames,
    thresholds: Thresholds = Thresholds(),
    *,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Per-interval scores (see the module doc) plus ``median_change`` (adaptive mode only).

    Chunks of ``CHUNK`` frames are analysed on ``WORKERS`` threads (OpenCV and numpy release
    the GIL), with at most ``WORKERS + 1`` chunks in flight: memory stays bounded."""
    n = len(frames)
    names = SCORE_NAMES + (("median_change",) if thresholds.adaptive_holds else ())
    out = {name: np.full(max(n - 1, 0), np.nan, np.float32) for name in names}
    if n < 2:
        return out

    def merge(future) -> None:
        first, scores = future.result()
        for name, values in scores.items():
            out[name][first : first + len(values)] = values
        if progress is not None:
            progress(min(n, first + len(values) + 1), n)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending = deque()
        for start in range(0, n - 1, CHUNK):
            pending.append(pool.submit(_score_chunk, frames, start, thresholds))
            if len(pending) > WORKERS:
                merge(pending.popleft())
        while pending:
            merge(pending.popleft())
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
    da, db = _describe(a), _describe(b)
    return bool(color_shift(da.cdf, db.cdf) >= thresholds.cut_color
                and unexplained(da.y, db.y) >= thresholds.cut_residual)


def flash_frames(labels) -> list[int]:
    """Frames with a cut on both sides (one-frame flashes or inserts)."""
    seq = labels.labels if isinstance(labels, MotionLabels) else labels
    return [i for i in range(1, len(seq)) if seq[i - 1] == CUT and seq[i] == CUT]


def _finite_or_nan(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.nan
