"""Join the two segments of a split first-last-frame shot at the shared hero frame.

Segment A ends on the hero keyframe and segment B starts on it, so B's first frame is the
same moment rendered a second time; it is dropped (``drop_shared_hero``) whatever it looks
like, giving ``len(A) + len(B) - 1`` frames. The two renders of the hero still differ a
little (colour, brightness, detail); two optional corrections hide the seam:

* colour matching: a per-channel mean/std transfer (Reinhard-style, in RGB) that maps B's
  first frame onto A's last, applied to B either with full strength on the first frame after
  the seam (B's first kept frame) fading linearly to none at B's last frame (``fade``: B's
  end keyframe stays as generated, so when B contributes that one frame only, ``fade``
  leaves it unchanged) or to all of B (``all``);
* seam smoothing over ``k`` frames: the low-passed difference between A's last frame and B's
  first (after colour matching) is added to B's next ``k`` frames with weights
  ``k/(k+1), (k-1)/(k+1), ..., 1/(k+1)``, so the jump is spread over ``k`` frames instead of
  one. Low-passing (Gaussian, sigma = min(H, W) / 64) carries the colour and shading drift
  but not fine detail, which would ghost on moving content. The frame count is unchanged.

The seam report (JSON keys read by the seam quality gate): ``seam_index`` (index of the first
frame from B in the output), ``dropped_frame`` (index in B of the dropped frame: 0, or None),
``luma_jump`` (absolute difference of mean BT.601 luma across the seam, 0..1 units),
``ssim_across_seam`` (luma SSIM of the two output frames at the seam) and
``hero_similarity`` (luma SSIM of A's last and B's first input frames).

Longer chains (the segments of a long shot): ``concat_chain`` joins ``N`` segments left to
right, and ``chain_reports`` accumulates the seam reports of a chain of concat nodes into
the one list the seam gate reads, each ``seam_index`` counted in the joined clip.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from .imaging import luma, ssim
from .validate import InputError, check_images, check_same_size

COLOR_MATCH = ("off", "fade", "all")
MAX_GAIN = 2.0  # cap of the std ratio of the colour transfer (flat frames would explode it)
SMOOTH_SIGMA_DIVISOR = 64


def _colour_transfer(src: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, offset) per channel so that ``x * gain + offset`` maps ``src``'s mean/std to ``ref``'s."""
    mu_s, sd_s = src.mean(dim=(0, 1)), src.std(dim=(0, 1))
    mu_r, sd_r = ref.mean(dim=(0, 1)), ref.std(dim=(0, 1))
    gain = (sd_r / sd_s.clamp_min(1e-4)).clamp(1 / MAX_GAIN, MAX_GAIN)
    return gain, mu_r - mu_s * gain


def _low_pass(frame: torch.Tensor) -> torch.Tensor:
    sigma = max(1.0, min(frame.shape[:2]) / SMOOTH_SIGMA_DIVISOR)
    arr = frame.detach().cpu().float().numpy()
    out = cv2.GaussianBlur(arr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return torch.from_numpy(np.ascontiguousarray(out)).to(frame)


def fade_weights(kept: int) -> torch.Tensor:
    """``fade`` strengths of the ``kept`` frames B contributes: 1 on the first frame after the
    seam, falling linearly to 0 on B's last frame (its end keyframe). A single kept frame is
    that end keyframe and gets 0."""
    if kept < 2:
        return torch.zeros(kept)
    return 1 - torch.arange(kept, dtype=torch.float32) / (kept - 1)


def seam_report(frames: torch.Tensor, seam_index: int, a_last: torch.Tensor, b_first: torch.Tensor,
                dropped_frame: int | None) -> dict:
    """The seam metrics of ``frames`` joined at ``seam_index`` (see the module docstring)."""
    before, after = frames[seam_index - 1:seam_index], frames[seam_index:seam_index + 1]
    jump = (luma(after).mean() - luma(before).mean()).abs()
    return {
        "seam_index": seam_index,
        "dropped_frame": dropped_frame,
        "luma_jump": round(float(jump), 6),
        "ssim_across_seam": round(float(ssim(before, after)[0]), 6),
        "hero_similarity": round(float(ssim(a_last[None], b_first[None])[0]), 6),
    }


def concat_segments(
    segment_a: torch.Tensor,
    segment_b: torch.Tensor,
    drop_shared_hero: bool = True,
    smooth_frames: int = 0,
    color_match: str = "off",
    *,
    node: str | None = None,
) -> tuple[torch.Tensor, dict]:
    """Concatenate A and B (dropping B's first frame when ``drop_shared_hero``).

    Returns the frames and the seam report."""
    a = check_images(segment_a, "segment_a", node=node)
    b = check_images(segment_b, "segment_b", node=node)
    if drop_shared_hero and b.shape[0] < 2:
        raise InputError(
            "segment_b",
            "1 frame: with drop_shared_hero its first frame (the hero again) is dropped and nothing of B is left",
            node,
        )
    check_same_size(a, b, "segment_a", "segment_b", node=node)
    if color_match not in COLOR_MATCH:
        raise InputError("color_match", f"must be one of {list(COLOR_MATCH)}, got {color_match!r}", node)
    start = 1 if drop_shared_hero else 0
    kept = b.shape[0] - start
    if int(smooth_frames) != smooth_frames or not 0 <= smooth_frames <= kept:
        raise InputError(
            "smooth_frames",
            f"must be a whole number in 0..{kept} (the frames segment_b contributes), got {smooth_frames!r}",
            node,
        )
    a_last, b_first = a[-1], b[0]
    b_out = b[start:].clone()

    if color_match != "off":
        gain, offset = _colour_transfer(b_first, a_last)
        if color_match == "all":
            weights = torch.ones(kept)
        else:
            weights = fade_weights(kept)
        w = weights.to(b_out).view(-1, 1, 1, 1)
        b_out = (b_out + w * (b_out * (gain - 1) + offset)).clamp_(0, 1)
        b_first = (b_first * gain + offset).clamp(0, 1)

    if smooth_frames:
        residual = _low_pass(a_last) - _low_pass(b_first)
        k = int(smooth_frames)
        weights = (k - torch.arange(k, dtype=torch.float32)) / (k + 1)
        b_out[:k] = (b_out[:k] + weights.to(b_out).view(-1, 1, 1, 1) * residual).clamp_(0, 1)

    frames = torch.cat([a, b_out])
    report = seam_report(frames, a.shape[0], a[-1], b[0], 0 if drop_shared_hero else None)
    return frames, report


def chain_reports(previous: str | None, report: dict) -> list[dict]:
    """The seam reports of a chain so far (``previous``: the JSON of the concat before,
    one object or a list) followed by ``report``: the accumulated list the seam gate reads."""
    if previous is None or not previous.strip():
        return [report]
    try:
        data = json.loads(previous)
    except ValueError as exc:
        raise InputError("previous_report", f"not valid JSON ({exc})") from None
    records = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) and isinstance(r.get("seam_index"), int) for r in records):
        raise InputError("previous_report", "expected AP_FLFChainConcat seam report(s) with a seam_index")
    return [*records, report]


def concat_chain(
    segments: list[torch.Tensor],
    drop_shared_hero: bool = True,
    smooth_frames: int = 0,
    color_match: str = "off",
    *,
    node: str | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """Join ``N >= 1`` segments pairwise, left to right (``((s1 + s2) + s3) + ...``, exactly
    what a chain of ``AP_FLFChainConcat`` nodes does), dropping each shared frame once.

    Returns the frames (``sum(len) - (N - 1)`` with ``drop_shared_hero``) and one seam
    report per join, each ``seam_index`` counted in the joined clip."""
    if not segments:
        raise InputError("segments", "no segment to join", node)
    frames = check_images(segments[0], "segment_1", node=node)
    reports = []
    for seg in segments[1:]:
        frames, report = concat_segments(frames, seg, drop_shared_hero, smooth_frames, color_match, node=node)
        reports.append(report)
    return frames, reports
