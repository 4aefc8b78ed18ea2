"""Per-frame artifact checks: black/blank, blown or crushed exposure, blur, NaN/inf and a
frozen clip.

Everything is measured on the luma of a subsampled copy of each frame (every
``analysis_step``-th pixel, long side 400-799 px: unbiased for the fractions,
consistent across frames for the sharpness, and independent of the render size),
which keeps the gate far cheaper than what it guards. Frames are judged
against their *neighbours* (the median over up to ``NEIGHBOURS`` frames on each
side), because lighting and focus legitimately drift over a shot while a broken
frame differs from the frames around it:

* *black*: the share of pixels with luma < 0.1 (ffmpeg ``blackdetect``'s ``pix_th``)
  reaches ``black_fraction`` (its ``pic_th``);
* *blank*: luma standard deviation below ``min_luma_std`` (a flat, collapsed decode);
* *blown* / *crushed*: the frame's mean luma jumps away from its neighbours by more
  than ``max_exposure_jump`` (``|log((mean + 0.02) / (neighbours + 0.02))|``, up =
  blown, down = crushed), or its share of clipped pixels (luma >= 250/255, or
  <= 5/255) exceeds the clip's median share by more than ``max_clipped_increase``
  (bright skies and black line art are normal in anime, hence relative);
* *blurred*: variance of the Laplacian below ``min_sharpness_ratio`` x its
  neighbours' median; *soft*: below ``min_sharpness`` absolutely (an all-soft clip);
* *frozen* clip: when motion was asked for, every interval's largest 8 x 8-block
  mean absolute luma change (0-255, on 128-pixel-wide thumbnails) stays below
  ``frozen_motion`` (decode noise of a still frame gives about 0.3-0.7, the slowest
  real WAN clip measured 9);
* NaN/inf pixels: reported per frame (those frames are excluded from the rest).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch

from ..contracts import GateResult

ANALYSIS_SIDE = 400
THUMB_WIDTH = 128
BLOCK = 8
NEIGHBOURS = 4
_EXPOSURE_EPS = 0.02


@dataclass(frozen=True)
class ArtifactThresholds:
    """Defaults measured on 31 real WAN clips and negatives built from them
    (``benchmarks/eval_gates.py``); see ``docs/quality_report.md``."""

    black_fraction: float = 0.98
    min_luma_std: float = 0.02
    max_exposure_jump: float = 0.2
    max_clipped_increase: float = 0.2
    min_sharpness_ratio: float = 0.6
    min_sharpness: float = 1e-4
    frozen_motion: float = 3.0


@dataclass(frozen=True)
class FrameStats:
    """Per-frame measurements (arrays of length ``n_frames``; ``motion`` has ``n_frames - 1``)."""

    finite: np.ndarray
    mean_luma: np.ndarray
    luma_std: np.ndarray
    dark_fraction: np.ndarray
    blown_fraction: np.ndarray
    crushed_fraction: np.ndarray
    sharpness: np.ndarray
    motion: np.ndarray


def _block_max(diff: np.ndarray) -> float:
    """Largest mean over the full 8 x 8 blocks of a 2-D array (the whole array if smaller)."""
    h, w = (diff.shape[0] // BLOCK) * BLOCK, (diff.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        return float(diff.mean())
    blocks = diff[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3))
    return float(blocks.max())


def analysis_step(height: int, width: int) -> int:
    """Pixel step of the analysis copy: every ``step``-th pixel, so that its long side stays
    between ``ANALYSIS_SIDE`` and twice that (frames shorter than that are used whole)."""
    return max(1, max(height, width) // ANALYSIS_SIDE)


def frame_stats(frames: torch.Tensor) -> FrameStats:
    """Measure an IMAGE batch ``[B,H,W,3]`` (non-finite pixels are allowed and reported)."""
    b = int(frames.shape[0])
    finite = torch.isfinite(frames.reshape(b, -1).sum(dim=1)).numpy()
    if not finite.all():  # a huge finite value can overflow the sum: check those frames exactly
        for bad in np.flatnonzero(~finite):
            finite[bad] = bool(torch.isfinite(frames[bad]).all())
    step = analysis_step(frames.shape[1], frames.shape[2])
    small = frames[:, ::step, ::step, :3]
    stats = np.full((6, b), np.nan)
    thumbs: list[np.ndarray | None] = []
    for i in range(b):
        if not finite[i]:
            thumbs.append(None)
            continue
        rgb = np.ascontiguousarray(small[i].numpy(), dtype=np.float32)
        y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        np.clip(y, 0.0, 1.0, out=y)
        mean, std = cv2.meanStdDev(y)
        _, lap_std = cv2.meanStdDev(cv2.Laplacian(y, cv2.CV_32F))
        n = int(y.size)
        stats[:, i] = (
            mean[0, 0],
            std[0, 0],
            np.count_nonzero(y < 0.1) / n,
            np.count_nonzero(y >= 250 / 255) / n,
            np.count_nonzero(y <= 5 / 255) / n,
            lap_std[0, 0] ** 2,
        )
        tw = min(THUMB_WIDTH, y.shape[1])
        th = max(1, round(y.shape[0] * tw / y.shape[1]))
        thumbs.append(cv2.resize(y, (tw, th), interpolation=cv2.INTER_AREA) * 255.0)
    motion = np.full(max(b - 1, 0), np.nan)
    for i, (this, after) in enumerate(itertools.pairwise(thumbs)):
        if this is not None and after is not None:
            motion[i] = _block_max(cv2.absdiff(this, after))
    mean_luma, luma_std, dark, blown, crushed, sharpness = stats
    return FrameStats(finite, mean_luma, luma_std, dark, blown, crushed, sharpness, motion)


def neighbour_median(values: np.ndarray, usable: np.ndarray, radius: int = NEIGHBOURS) -> np.ndarray:
    """Median of the usable values within ``radius`` frames on each side, the frame itself
    excluded (the frame's own value where it has no usable neighbour)."""
    out = values.astype(np.float64).copy()
    for i in range(len(values)):
        lo, hi = max(0, i - radius), min(len(values), i + radius + 1)
        nb = [values[j] for j in range(lo, hi) if j != i and usable[j]]
        if nb:
            out[i] = np.median(nb)
    return out


def _listing(idx: list[int], limit: int = 12) -> str:
    return f"{idx[:limit]}{' ...' if len(idx) > limit else ''}"


def _idx(mask) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def _summary(values: np.ndarray, digits: int) -> list[float] | None:
    vals = values[~np.isnan(values)]
    if not len(vals):
        return None
    return [round(float(v), digits) for v in (vals.min(), np.median(vals), vals.max())]


def artifact_gate(frames: torch.Tensor, thresholds: ArtifactThresholds = ArtifactThresholds(),
                  expect_motion: bool = True, name: str = "artifact") -> GateResult:
    """Judge every frame of an IMAGE batch ``[B,H,W,3]`` (``B >= 1``)."""
    th = thresholds
    s = frame_stats(frames)
    ok = s.finite
    black = ok & (s.dark_fraction >= th.black_fraction)
    blank = ok & ~black & (s.luma_std < th.min_luma_std)
    usable = ok & ~black & ~blank
    ref = usable if usable.any() else ok

    jump = np.log((s.mean_luma + _EXPOSURE_EPS) / (neighbour_median(s.mean_luma, usable) + _EXPOSURE_EPS))
    blown_limit = float(np.median(s.blown_fraction[ref])) + th.max_clipped_increase if ref.any() else 1.0
    crushed_limit = float(np.median(s.crushed_fraction[ref])) + th.max_clipped_increase if ref.any() else 1.0
    blown = usable & ((jump > th.max_exposure_jump) | (s.blown_fraction > blown_limit))
    crushed = usable & ((jump < -th.max_exposure_jump) | (s.crushed_fraction > crushed_limit))
    sharp_ref = neighbour_median(s.sharpness, usable & ~blown & ~crushed)
    blurred = usable & (s.sharpness < th.min_sharpness_ratio * sharp_ref)
    soft = usable & (s.sharpness < th.min_sharpness)
    measured = s.motion[~np.isnan(s.motion)]
    max_motion = float(measured.max()) if len(measured) else None
    frozen = bool(expect_motion and max_motion is not None and max_motion < th.frozen_motion)

    problems = {"nonfinite": _idx(~ok), "black": _idx(black), "blank": _idx(blank), "blown": _idx(blown),
                "crushed": _idx(crushed), "blurred": _idx(blurred), "soft": _idx(soft)}
    reasons = [f"{kind} frame(s) {_listing(idx)}" for kind, idx in problems.items() if idx]
    failed = sorted(set().union(*problems.values()))
    if frozen:
        reasons.append(f"frozen clip: largest motion {max_motion:.2f} < {th.frozen_motion} (expect_motion is on)")
        failed = list(range(len(ok)))
    with np.errstate(invalid="ignore"):
        sharp_ratio = s.sharpness / np.where(sharp_ref > 0, sharp_ref, np.nan)
    return GateResult(
        name=name,
        passed=not failed,
        metrics={
            "n_frames": int(len(ok)),
            **{f"{kind}_frames": idx for kind, idx in problems.items()},
            "frozen": frozen,
            "max_motion": round(max_motion, 3) if max_motion is not None else None,
            "max_exposure_jump": round(float(np.nanmax(np.abs(jump[usable])) if usable.any() else 0.0), 4),
            "min_sharpness_ratio": round(float(np.nanmin(sharp_ratio[usable])) if usable.any() else 1.0, 4),
            "min_median_max": {
                "mean_luma": _summary(s.mean_luma, 4),
                "luma_std": _summary(s.luma_std, 4),
                "dark_fraction": _summary(s.dark_fraction, 4),
                "blown_fraction": _summary(s.blown_fraction, 4),
                "crushed_fraction": _summary(s.crushed_fraction, 4),
                "sharpness": _summary(s.sharpness, 6),
                "motion": _summary(s.motion, 3),
            },
        },
        thresholds={f.name: getattr(th, f.name) for f in fields(th)} | {"expect_motion": expect_motion},
        failed_frames=failed,
        reasons=reasons,
    )
