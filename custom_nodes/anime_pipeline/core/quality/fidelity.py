"""Keyframe fidelity: does a first-last-frame clip start and end on its keyframes?

The clip's first frame is compared with the start keyframe and its last frame with
the end keyframe, at half the clip's resolution (the keyframe is resized to the
clip's frame size first when they differ; the resize is recorded). Three numbers:

* ``ssim``: SSIM of luma (``core.imaging.ssim``: Gaussian 11/1.5): structure and
  position. A 5 % spatial shift or a different frame drops it far below what a VAE
  round trip (slight blur plus compression) costs;
* ``mean_shift``: the largest per-channel mean difference, 0-255 scale: a global
  colour cast or exposure drift;
* ``delta_e``: mean CIE76 delta-E in Lab (OpenCV, D65) between the 16 x 16-pixel
  block means of the two frames: perceptual colour drift. Block means make it blind
  to what a round trip legitimately changes (edges, texture, noise: per-pixel delta-E
  of a JPEG 85 + blur round trip reaches 3.5 on textured frames, block delta-E 0.5)
  while a colour drift survives averaging unchanged.

A silently dropped end keyframe (the model ignored it) shows as a last frame that
matches nothing: low SSIM and usually a large delta-E.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ..contracts import GateResult
from ..imaging import resize, ssim
from .colour import mean_delta_e

BLOCK = 16


@dataclass(frozen=True)
class FidelityThresholds:
    """Defaults measured on 31 real WAN clips against keyframes through a JPEG 85 + blur
    round trip, and on drifted/shifted/swapped negatives (``benchmarks/eval_gates.py``)."""

    min_ssim: float = 0.8
    max_mean_shift: float = 2.5
    max_delta_e: float = 1.5


def shrink(frame: torch.Tensor, factor: int, minimum: int) -> torch.Tensor:
    """``[1,H,W,3]`` area-downscaled by ``factor`` (at least ``minimum`` px a side)."""
    _, h, w, _ = frame.shape
    return resize(frame, max(minimum, w // factor), max(minimum, h // factor), "area")


def compare(frame: torch.Tensor, keyframe: torch.Tensor) -> dict:
    """Metrics of one clip frame ``[1,H,W,3]`` against one keyframe ``[1,h,w,3]``."""
    resized = frame.shape[1:3] != keyframe.shape[1:3]
    original = [int(keyframe.shape[2]), int(keyframe.shape[1])]
    if resized:
        keyframe = resize(keyframe, frame.shape[2], frame.shape[1], "area")
    a, b = shrink(frame, 2, 8), shrink(keyframe, 2, 8)
    shift = (a[0].mean(dim=(0, 1)) - b[0].mean(dim=(0, 1))).double().numpy() * 255.0
    blocks_a, blocks_b = shrink(frame, BLOCK, 4), shrink(keyframe, BLOCK, 4)
    return {
        "ssim": round(float(ssim(a, b)[0]), 4),
        "mean_shift": round(float(np.abs(shift).max()), 3),
        "mean_shift_rgb": [round(float(v), 3) for v in shift],
        "delta_e": round(mean_delta_e(blocks_a[0].numpy(), blocks_b[0].numpy()), 3),
        "keyframe_resized_from": original if resized else None,
    }


def _failures(m: dict, th: FidelityThresholds) -> list[str]:
    out = []
    if m["ssim"] < th.min_ssim:
        out.append(f"ssim {m['ssim']:.3f} < {th.min_ssim}")
    if m["mean_shift"] > th.max_mean_shift:
        out.append(f"mean colour shift {m['mean_shift']:.2f}/255 > {th.max_mean_shift}")
    if m["delta_e"] > th.max_delta_e:
        out.append(f"delta-E {m['delta_e']:.2f} > {th.max_delta_e}")
    return out


def keyframe_fidelity_gate(frames: torch.Tensor, start_keyframe: torch.Tensor | None = None,
                           end_keyframe: torch.Tensor | None = None,
                           thresholds: FidelityThresholds = FidelityThresholds(),
                           name: str = "keyframe_fidelity") -> GateResult:
    """Compare ``frames[0]`` with ``start_keyframe`` and ``frames[-1]`` with ``end_keyframe``
    (each ``[1,h,w,3]``; at least one must be given)."""
    if start_keyframe is None and end_keyframe is None:
        raise ValueError("keyframe fidelity needs a start_keyframe, an end_keyframe or both")
    metrics: dict[str, Any] = {"n_frames": int(frames.shape[0])}
    notes, reasons, failed = [], [], []
    for end, key, index in (("start", start_keyframe, 0), ("end", end_keyframe, frames.shape[0] - 1)):
        if key is None:
            continue
        m = compare(frames[index:index + 1], key)
        metrics[end] = {"frame": int(index), **m}
        problems = _failures(m, thresholds)
        if problems:
            failed.append(int(index))
            reasons.append(f"{end} frame {index}: " + ", ".join(problems))
        if m["keyframe_resized_from"]:
            notes.append(f"{end} keyframe {m['keyframe_resized_from'][0]}x{m['keyframe_resized_from'][1]} resized "
                         f"to the clip's {frames.shape[2]}x{frames.shape[1]} for the comparison")
    return GateResult(
        name=name,
        passed=not failed,
        metrics=metrics,
        thresholds={f.name: getattr(thresholds, f.name) for f in fields(thresholds)},
        failed_frames=sorted(set(failed)),
        notes=notes,
        reasons=reasons,
    )
