"""Cut / hold / motion classification of the intervals between consecutive frames.

Every frame is reduced once to a small analysis thumbnail (long side
``motion_features.ANALYSIS_SIZE`` px, 160); each interval ``i -> i+1`` then gets
three scores (computed a run of frames at a time by :mod:`.motion_features`):

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
``devkit/groundtruth``):

* **cut**: ``color_shift >= cut_color and unexplained >= cut_residual``.
  Flash frames need no special case: both intervals around a flash are cuts
  (never blended), and :func:`flash_frames` lists them.
* **hold**: not a cut and ``detail_change < hold_threshold``.
* **adaptive holds** (opt-in, for generated video whose held drawings carry
  independent per-frame noise): whole-frame sub-pixel jitter (below
  ``JITTER_LIMIT`` thumbnail px) is compensated and the threshold becomes
  ``max(hold_threshold, adaptive_factor * sqrt(2 / downscale) * noise_floor)``,
  with the clip's noise floor taken as the 2nd percentile of the per-interval
  median block difference, and ``downscale`` the frame-to-thumbnail ratio
  (at least 2: 2 for 320 px frames, 8 for 1280x720). The factor is stated for
  2x: noise of the same grain in source pixels covers fewer thumbnail pixels in
  larger frames, its block maxima sit closer to its median, and the ratio that
  separates held drawings from motion shrinks. (Measured: ``docs/lab_notes.md``.) Opt-in
  because on noisy clips without holds it labels the slowest motion as hold
  more often than the fixed rule.
* **motion**: everything else.

Frames may be ``uint8`` numpy ``[N,H,W,3]`` or a ComfyUI IMAGE tensor (float
0..1). They are analysed in independent chunks of up to ``CHUNK`` frames on
``WORKERS`` threads; a tensor is read one frame at a time (a view, for a CPU float32
tensor), never converted whole.

Entry points: :func:`classify` (labels + scores as :class:`MotionLabels`),
:func:`is_cut` (the cut rule on one pair, e.g. a seam between two renders),
:func:`interval_scores` / :func:`decide` (scores and rules separately) and
:func:`flash_frames`.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .contracts import CUT, HOLD, MOTION, MotionLabels
from .flow import compute_flow, warp
from .motion_features import (
    acquire,
    analysis_size,
    block_crop,
    block_means,
    color_shifts,
    describe_run,
    detail_changes,
    highpass,
    release,
)

JITTER_LIMIT = 0.5  # thumbnail px (~0.3 % of the frame width)
NOISE_FLOOR_PERCENTILE = 2
CONTRAST_EPS = 4.0
CHUNK = 48  # frames analysed together at most: ~19 MB of buffers per chunk in flight (32: ~8 % slower)
MIN_CHUNK = 8
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


def _frame_array(frames, index: int) -> np.ndarray:
    """Frame ``index`` as numpy: a ``uint8``/float array row, or a ComfyUI IMAGE tensor's frame
    (a view for a CPU float32 tensor; one frame is converted at a time, never the clip)."""
    frame = frames[index]
    if isinstance(frame, np.ndarray):
        return frame
    return frame.detach().cpu().float().numpy()


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
    return highpass(np.ascontiguousarray(block_crop(d)))


def unexplained(ga: np.ndarray, gb: np.ndarray) -> float:
    """Flow-compensated residual relative to the frames' contrast (0 = explained by motion),
    of two ``uint8`` luma thumbnails."""
    f = compute_flow(ga, gb, scale=1.0, preset="ultrafast")
    ya, yb = ga.astype(np.float32), gb.astype(np.float32)
    residual = cv2.norm(warp(yb, f), ya, cv2.NORM_L1) / ya.size
    contrast = 0.5 * (_mean_abs_deviation(ya) + _mean_abs_deviation(yb))
    return residual / (contrast + CONTRAST_EPS)


def _mean_abs_deviation(x: np.ndarray) -> float:
    return cv2.norm(x - np.float32(cv2.mean(x)[0]), cv2.NORM_L1) / x.size


def _score_chunk(frames, start: int, size: int, thresholds: Thresholds) -> tuple[int, dict[str, np.ndarray]]:
    """Scores of the intervals ``start .. start + size - 1`` (at most; frames ``start .. start
    + size``: a chunk shares its first frame with the one before, so chunks are independent
    and together cover every interval). Returns the first interval's index."""
    first = start
    stop = min(len(frames), start + size + 1)
    ws = acquire(CHUNK + 1, *analysis_size(*frames.shape[1:3]))
    try:
        m = describe_run((_frame_array(frames, i) for i in range(first, stop)), ws)
        shift = color_shifts(ws, m)
        out = {"color_shift": shift}
        if thresholds.adaptive_holds:
            y = ws.grey[:m].astype(np.float32)
            blocks = [block_means(np.abs(_global_jitter_compensated(y[j], y[j + 1]))) for j in range(m - 1)]
            out["detail_change"] = np.array([b.max() for b in blocks], np.float32)
            out["median_change"] = np.array([np.median(b) for b in blocks], np.float32)
        else:
            out["detail_change"] = detail_changes(ws, m)
        out["unexplained"] = np.full(m - 1, np.nan, np.float32)
        for j in np.flatnonzero(shift >= thresholds.cut_color):
            out["unexplained"][j] = unexplained(ws.grey[j], ws.grey[j + 1])
    finally:
        release(ws, keep=WORKERS + 1)
    return first, out


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The analysis thread pool of ``WORKERS`` threads, started once and kept (idle threads
    cost nothing), instead of starting threads on every call."""
    with _POOL_LOCK:
        if WORKERS not in _POOLS:
            _POOLS[WORKERS] = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="ap_motion")
        return _POOLS[WORKERS]


_CV_THREADS = {"users": 0, "saved": 1}


@contextmanager
def opencv_single_threaded():
    """OpenCV's own thread pool off while the analysis (or retime) workers run: each OpenCV call in a
    worker would otherwise split itself over the same cores again (nested pools; in one
    interleaved run at 1280x720 the median rate rose from 5.2k to 5.9k frames/s with it, the
    best runs did not). Process-wide and reference-counted; the previous setting comes back
    when the last analysis ends."""
    with _POOL_LOCK:
        if _CV_THREADS["users"] == 0:
            _CV_THREADS["saved"] = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _CV_THREADS["users"] += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _CV_THREADS["users"] -= 1
            if _CV_THREADS["users"] == 0:
                cv2.setNumThreads(_CV_THREADS["saved"])


def chunk_size(n_frames: int) -> int:
    """Frames per chunk for a clip of ``n_frames``: at most ``CHUNK`` (at least ``MIN_CHUNK``),
    with the chunk count a multiple of ``WORKERS`` and at least two per worker, so that no
    worker idles while another finishes a last, lone chunk (240 frames on 2 workers: 6
    chunks of 40 frames instead of 4 of 48 and a lone fifth)."""
    intervals = max(1, n_frames - 1)
    chunks = max(2 * WORKERS, math.ceil(intervals / CHUNK))
    chunks = math.ceil(chunks / WORKERS) * WORKERS
    return max(MIN_CHUNK, min(CHUNK, math.ceil(intervals / chunks)))


def interval_scores(
    frames,
    thresholds: Thresholds = Thresholds(),
    *,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Per-interval scores (see the module doc) plus ``median_change`` (adaptive mode only).

    Chunks of at most ``CHUNK`` frames are analysed on ``WORKERS`` threads (OpenCV and numpy
    release the GIL), with at most ``WORKERS + 1`` chunks in flight: memory stays bounded.
    Short clips are cut into at least two chunks per worker, so no worker idles at the end."""
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

    pool = _pool()
    with opencv_single_threaded() if WORKERS > 1 else nullcontext():
        pending: deque = deque()
        size = chunk_size(n)
        for start in range(0, n - 1, size):
            pending.append(pool.submit(_score_chunk, frames, start, size, thresholds))
            if len(pending) > WORKERS:
                merge(pending.popleft())
        while pending:
            merge(pending.popleft())
    return out


def analysis_downscale(height: int, width: int) -> float:
    """Frame-to-thumbnail ratio of frames this size, at least 2 (what the adaptive factor is
    stated for; smaller frames are analysed nearly at full size and keep the factor)."""
    th, tw = analysis_size(height, width)
    return max(2.0, max(height, width) / max(th, tw))


def effective_adaptive_factor(thresholds: Thresholds, downscale: float = 2.0) -> float:
    """``adaptive_factor`` at this analysis downscale: ``factor * sqrt(2 / downscale)``."""
    return thresholds.adaptive_factor * math.sqrt(2.0 / max(2.0, downscale))


def decide(
    scores: dict[str, np.ndarray], thresholds: Thresholds = Thresholds(), *, downscale: float = 2.0
) -> tuple[list[str], float]:
    """Labels from :func:`interval_scores` of frames analysed at ``downscale`` (see
    :func:`analysis_downscale`); also returns the hold threshold actually used."""
    cut = (scores["color_shift"] >= thresholds.cut_color) \
        & (np.nan_to_num(scores["unexplained"]) >= thresholds.cut_residual)
    hold_limit = thresholds.hold_threshold
    if thresholds.adaptive_holds and (~cut).any():
        floor = float(np.percentile(scores["median_change"][~cut], NOISE_FLOOR_PERCENTILE))
        hold_limit = max(hold_limit, effective_adaptive_factor(thresholds, downscale) * floor)
    hold = ~cut & (scores["detail_change"] < hold_limit)
    labels = [CUT if c else HOLD if h else MOTION for c, h in zip(cut, hold, strict=True)]
    return labels, hold_limit


def classify(frames, thresholds: Thresholds = Thresholds(), *, progress: Progress | None = None) -> MotionLabels:
    """Label every interval of a clip (``uint8 [N,H,W,3]`` array or IMAGE tensor)."""
    scores = interval_scores(frames, thresholds, progress=progress)
    downscale = analysis_downscale(*frames.shape[1:3])
    labels, hold_limit = decide(scores, thresholds, downscale=downscale)
    used = {**thresholds.as_dict(), "hold_limit": hold_limit}
    used["adaptive_holds"] = float(thresholds.adaptive_holds)
    used["analysis_downscale"] = downscale
    used["adaptive_factor_effective"] = effective_adaptive_factor(thresholds, downscale)
    return MotionLabels(
        labels=tuple(labels),
        n_frames=len(frames),
        scores={k: tuple(_finite_or_nan(v) for v in scores[k]) for k in SCORE_NAMES},
        thresholds=used,
    )


def is_cut(a: np.ndarray, b: np.ndarray, thresholds: Thresholds = Thresholds()) -> bool:
    """The cut rule on one pair of ``uint8`` (or float 0..1) ``[H,W,3]`` frames."""
    ws = acquire(2, *analysis_size(*a.shape[:2]))
    try:
        describe_run([a, b], ws)
        shift = float(color_shifts(ws, 2)[0])
        return shift >= thresholds.cut_color and unexplained(ws.grey[0], ws.grey[1]) >= thresholds.cut_residual
    finally:
        release(ws)


def flash_frames(labels) -> list[int]:
    """Frames with a cut on both sides (one-frame flashes or inserts)."""
    seq = labels.labels if isinstance(labels, MotionLabels) else labels
    return [i for i in range(1, len(seq)) if seq[i - 1] == CUT and seq[i] == CUT]


def _finite_or_nan(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.nan
