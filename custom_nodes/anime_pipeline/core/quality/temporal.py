"""Flow-compensated temporal residuals and the temporal (flicker / instability) gate.

For every interval ``t -> t+1`` the previous frame is warped onto the current one
with DIS flow (``core.flow``), pixels failing the forward-backward check
(occlusions, flow errors) are dropped, and the residual is split in two parts:

* ``warp_error``: mean absolute RGB residual (0..1) after removing a global gain
  per channel: structural instability (boiling texture, melting detail, a broken
  frame). Real motion leaves it small because the flow explains it.
* ``log_gain``: ``log`` of the mean luma ratio of the current frame to the warped
  previous one: the global brightness change, free of motion.

Plain consecutive-frame SSIM or MAE mixes motion with flicker (good WAN clips have
consecutive SSIM-Y medians of 0.76-0.96); this split does not. Brightness flicker
is a *pulse*: a frame brighter (or darker) than both neighbours, i.e. ``log_gain``
up into the frame and down out of it. ``pulse[t] = max(min(g[t-1], -g[t]),
min(-g[t-1], g[t]))`` is zero for steady lighting and for lighting steps, and equals
the pulse height for an isolated flash. The seam gate reuses the same residuals
(``luma_shift`` / ``chroma_shift``: medians of the luma and chroma residuals on the
0-255 scale, robust to occlusion outliers).

All measurements are taken on frames area-downscaled to at most
``ANALYSIS_MAX_SIDE`` pixels with flow at ``FLOW_SCALE`` of that: the defaults of
the gates were measured at exactly this resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..contracts import CUT, GateResult, MotionLabels
from ..flow import compute_flow, consistency_error, warp
from ..imaging import resize, to_uint8
from ..motion import classify

ANALYSIS_MAX_SIDE = 512
FLOW_SCALE = 0.5
OCCLUSION_PX = 1.0
MIN_MATCHED = 0.05  # below this fraction of matched pixels the whole frame is used
MIN_SIDE, MAX_ASPECT = 64, 4

Progress = Callable[[int, int], None]

# BT.601 luma and chroma (Cb, Cr) rows, applied to RGB residuals.
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_LUMA = _YCC[0].astype(np.float64)
_MEDIAN_STEP = 2  # medians over every other row and column of matched pixels


def check_flow_size(height: int, width: int) -> None:
    """Optical flow needs frames of at least ``MIN_SIDE`` px a side and an aspect ratio of at
    most ``MAX_ASPECT`` (OpenCV's DIS crashes the process on thinner images, e.g. 20x160
    analysis thumbnails). Raises ``ValueError`` naming the size."""
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_ASPECT * min(height, width):
        raise ValueError(f"frames of {width}x{height} are too small or too thin for optical flow (need at least "
                         f"{MIN_SIDE} px a side and an aspect ratio up to {MAX_ASPECT}:1)")


def analysis_frames(frames: torch.Tensor, max_side: int = ANALYSIS_MAX_SIDE) -> np.ndarray:
    """IMAGE ``[B,H,W,3]`` -> ``uint8 [B,h,w,3]`` area-downscaled so that ``max(h, w) <= max_side``."""
    _, h, w, _ = frames.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        frames = resize(frames, max(1, round(w * scale)), max(1, round(h * scale)), "area")
    return to_uint8(frames)


@dataclass(frozen=True)
class Residuals:
    """Per-interval residual statistics (``NaN`` where an interval was not measured)."""

    warp_error: np.ndarray
    log_gain: np.ndarray
    luma_shift: np.ndarray
    chroma_shift: np.ndarray
    matched: np.ndarray

    def __len__(self) -> int:
        return len(self.warp_error)


def interval_residual(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float, float, float, float]:
    """``(warp_error, log_gain, luma_shift, chroma_shift, matched)`` of one interval (``uint8`` RGB)."""
    flow_cp = compute_flow(cur, prev, scale=FLOW_SCALE)
    flow_pc = compute_flow(prev, cur, scale=FLOW_SCALE)
    warped = warp(prev, flow_cp).astype(np.float32)
    valid = consistency_error(flow_cp, flow_pc) <= OCCLUSION_PX
    matched = float(valid.mean())
    if matched < MIN_MATCHED:
        valid[:] = True
    mask = valid.view(np.uint8)
    cur_f = cur.astype(np.float32)
    mean_c = np.array(cv2.mean(cur_f, mask)[:3])
    mean_p = np.array(cv2.mean(warped, mask)[:3])
    gain = (mean_c / np.maximum(mean_p, 1.0)).astype(np.float32)
    warp_error = float(np.mean(cv2.mean(cv2.absdiff(cur_f, warped * gain), mask)[:3]) / 255.0)
    log_gain = math.log((mean_c @ _LUMA + 1.0) / (mean_p @ _LUMA + 1.0))  # +1: stable on near-black frames
    sub = (slice(None, None, _MEDIAN_STEP),) * 2
    ycc = cv2.transform(cv2.subtract(cur_f[sub], warped[sub]), _YCC)[valid[sub]]
    med = np.median(ycc, axis=0)
    return warp_error, log_gain, float(med[0]), float(np.abs(med[1:]).max()), matched


def residual_series(frames_u8: np.ndarray, intervals=None, progress: Progress | None = None) -> Residuals:
    """Residuals of the intervals ``i -> i+1`` listed in ``intervals`` (all by default)."""
    n = max(len(frames_u8) - 1, 0)
    todo = list(range(n) if intervals is None else intervals)
    out = np.full((5, n), np.nan)
    for done, i in enumerate(todo, 1):
        out[:, i] = interval_residual(frames_u8[i], frames_u8[i + 1])
        if progress is not None:
            progress(done, len(todo))
    return Residuals(*out)


def brightness_pulses(log_gain: np.ndarray) -> np.ndarray:
    """Pulse height per frame (``[n_frames]``, 0 at both ends and next to unmeasured intervals)."""
    g_in, g_out = log_gain[:-1], log_gain[1:]
    inner = np.maximum(np.minimum(g_in, -g_out), np.minimum(-g_in, g_out))
    inner = np.where(np.isnan(inner), 0.0, np.clip(inner, 0.0, None))
    return np.concatenate([[0.0], inner, [0.0]]) if len(log_gain) else np.zeros(len(log_gain) + 1)


def cut_intervals(labels: MotionLabels | None, frames_u8: np.ndarray) -> list[int]:
    """Intervals labelled ``cut`` by ``labels`` (checked against the clip length), or by the
    pack's cut rule (``core.motion``) when no labels are given."""
    if labels is None:
        return classify(frames_u8).indices(CUT)
    if labels.n_frames != len(frames_u8):
        raise ValueError(f"motion labels describe {labels.n_frames} frames but the clip has {len(frames_u8)}")
    return labels.indices(CUT)


@dataclass(frozen=True)
class TemporalThresholds:
    """Defaults measured on 31 real WAN clips and their +4 % flicker versions
    (``benchmarks/eval_gates.py``); see ``docs/quality_report.md``."""

    warp_error_floor: float = 0.075
    warp_error_k: float = 3.0
    max_median_warp_error: float = 0.03
    max_flicker: float = 0.016


def temporal_gate(frames: torch.Tensor, thresholds: TemporalThresholds = TemporalThresholds(),
                  labels: MotionLabels | None = None, name: str = "temporal",
                  progress: Progress | None = None) -> GateResult:
    """Judge flicker and instability of a clip (IMAGE ``[B,H,W,3]``, ``B >= 2``)."""
    th = thresholds
    check_flow_size(frames.shape[1], frames.shape[2])
    small = analysis_frames(frames)
    n = len(small)
    cuts = sorted(set(cut_intervals(labels, small)))
    cut_set = set(cuts)
    measured = [i for i in range(n - 1) if i not in cut_set]
    res = residual_series(small, measured, progress)
    err = res.warp_error[measured] if measured else np.zeros(0)
    median = float(np.median(err)) if len(err) else 0.0
    limit = max(th.warp_error_floor, th.warp_error_k * median)
    unstable = [i for i in measured if res.warp_error[i] > limit]
    pulses = brightness_pulses(res.log_gain)
    flicker = [int(t) for t in np.flatnonzero(pulses > th.max_flicker)]
    median_bad = median > th.max_median_warp_error
    reasons, notes = [], []
    if unstable:
        worst = max(unstable, key=lambda i: res.warp_error[i])
        reasons.append(f"warp error above {limit:.4f} on {len(unstable)} interval(s) (worst {worst}->{worst + 1}: "
                       f"{res.warp_error[worst]:.4f})")
    if flicker:
        reasons.append(f"brightness flicker above {th.max_flicker:.1%} on frame(s) {flicker[:12]}"
                       f"{' ...' if len(flicker) > 12 else ''} (largest {pulses.max():.1%})")
    if median_bad:
        reasons.append(f"median warp error {median:.4f} above {th.max_median_warp_error} (unstable throughout)")
    if cuts:
        notes.append(f"skipped cut interval(s) {cuts}")
    failed = list(range(n)) if median_bad else sorted({i + 1 for i in unstable} | set(flicker))
    return GateResult(
        name=name,
        passed=not (unstable or flicker or median_bad),
        metrics={
            "n_frames": n,
            "median_warp_error": round(median, 5),
            "max_warp_error": round(float(err.max()), 5) if len(err) else 0.0,
            "warp_error_limit": round(limit, 5),
            "max_flicker": round(float(pulses.max()), 5),
            "unstable_intervals": unstable,
            "flicker_frames": flicker,
            "cut_intervals": cuts,
            "cuts_from": "motion_labels" if labels is not None else "cut_rule",
            "min_matched_fraction": round(float(np.nanmin(res.matched)), 3) if measured else None,
            "analysis_size": [int(small.shape[2]), int(small.shape[1])],
        },
        thresholds={
            "warp_error_floor": th.warp_error_floor,
            "warp_error_k": th.warp_error_k,
            "max_median_warp_error": th.max_median_warp_error,
            "max_flicker": th.max_flicker,
        },
        failed_frames=failed,
        notes=notes,
        reasons=reasons,
    )
