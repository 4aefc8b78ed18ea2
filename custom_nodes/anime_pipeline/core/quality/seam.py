"""Seam gate: the junction of two concatenated segments must not show.

A seam at index ``s`` is the interval from frame ``s - 1`` (last of segment A) to
frame ``s`` (first of segment B), the convention of ``AP_FLFChainConcat``'s
``seam_index``. It passes when all of these hold:

* it is not a cut, by the pack's cut rule (``core.motion.is_cut``);
* its flow-compensated warp error (``core.quality.temporal``) is at most
  ``max(warp_error_floor, warp_error_k x`` the median of its neighbours``)``
  (up to ``WINDOW`` intervals on each side, within the clip);
* its luma jump (median luma residual after warping, 0-255) differs from the
  neighbours' median by at most ``max_luma_jump``, and its chroma jump (the larger
  Cb/Cr median residual) exceeds theirs by at most ``max_chroma_jump``. Residuals
  after warping are free of motion, and comparing with the neighbours leaves out
  lighting that changes steadily through the shot.

The JSON of ``AP_FLFChainConcat`` (``seam_index``, ``dropped_frame``,
``luma_jump``, ``ssim_across_seam``, ``hero_similarity``) is accepted as the seam
source; its numbers are recorded in the metrics next to the gate's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..contracts import GateResult
from ..motion import is_cut
from .temporal import analysis_frames, check_flow_size, residual_series

WINDOW = 4
CONCAT_KEYS = ("seam_index", "dropped_frame", "luma_jump", "ssim_across_seam", "hero_similarity")


@dataclass(frozen=True)
class SeamThresholds:
    """Defaults measured on 31 real WAN clips split at their middle (positives) and the
    same seams with a 3-4/255 luma step (``benchmarks/eval_gates.py``)."""

    warp_error_k: float = 3.0
    warp_error_floor: float = 0.03
    max_luma_jump: float = 1.35
    max_chroma_jump: float = 2.0


def parse_seam_info(text: str) -> list[dict]:
    """Seam records from ``AP_FLFChainConcat``'s JSON: one object, a list of objects, or an
    object whose ``seam_index`` is a list. Raises ``ValueError`` on anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos}): {text[:80]!r}") from None
    records = data if isinstance(data, list) else [data]
    out = []
    for rec in records:
        if not isinstance(rec, dict) or "seam_index" not in rec:
            raise ValueError("expected an object with a 'seam_index' key (AP_FLFChainConcat's seam JSON), "
                             f"got {rec!r:.120}")
        indices = rec["seam_index"] if isinstance(rec["seam_index"], list) else [rec["seam_index"]]
        for idx in indices:
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise ValueError(f"seam_index must be an integer, got {idx!r}")
            out.append({**{k: rec.get(k) for k in CONCAT_KEYS if k in rec}, "seam_index": idx})
    if not out:
        raise ValueError("the seam JSON lists no seam")
    return out


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else 0.0


def judge_seam(frames: torch.Tensor, seam: int, th: SeamThresholds) -> tuple[dict, list[str]]:
    """Metrics and failure reasons of one seam (only the frames around it are analysed)."""
    n = frames.shape[0]
    k = seam - 1  # the seam interval
    lo, hi = max(0, k - WINDOW), min(n - 2, k + WINDOW)
    small = analysis_frames(frames[lo:hi + 2])
    res = residual_series(small)
    j = k - lo
    nb = np.array([i for i in range(len(res)) if i != j], dtype=int)
    err_med = _median(res.warp_error[nb])
    limit = max(th.warp_error_floor, th.warp_error_k * err_med)
    luma_jump = float(res.luma_shift[j] - _median(res.luma_shift[nb]))
    chroma_jump = float(res.chroma_shift[j] - _median(res.chroma_shift[nb]))
    cut = bool(is_cut(small[j], small[j + 1]))
    m = {
        "seam_index": seam,
        "is_cut": cut,
        "warp_error": round(float(res.warp_error[j]), 5),
        "neighbour_warp_error": round(err_med, 5),
        "warp_error_limit": round(limit, 5),
        "luma_jump": round(luma_jump, 3),
        "chroma_jump": round(chroma_jump, 3),
        "neighbour_intervals": len(nb),
    }
    problems = []
    if cut:
        problems.append("looks like a cut")
    if res.warp_error[j] > limit:
        problems.append(f"warp error {res.warp_error[j]:.4f} > {limit:.4f}")
    if abs(luma_jump) > th.max_luma_jump:
        problems.append(f"luma jump {luma_jump:+.2f}/255 (limit {th.max_luma_jump})")
    if chroma_jump > th.max_chroma_jump:
        problems.append(f"chroma jump {chroma_jump:.2f}/255 (limit {th.max_chroma_jump})")
    return m, problems


def check_seams(seams: list[int], n_frames: int) -> None:
    """Every seam must lie in ``1..n_frames - 1``: seam 0 would be judged as another interval
    (index -1) and seam ``n_frames`` has no frame after it. Raises ``ValueError`` naming them."""
    bad = sorted(s for s in set(seams) if not 1 <= s <= n_frames - 1)
    if bad:
        raise ValueError(f"seam(s) {bad} outside 1..{n_frames - 1} for {n_frames} frames")


def seam_gate(frames: torch.Tensor, seams: list[int], thresholds: SeamThresholds = SeamThresholds(),
              concat_info: list[dict] | None = None, name: str = "seam") -> GateResult:
    """Judge each seam (index of the first frame after the junction, ``1 <= s <= B - 1``)."""
    check_flow_size(frames.shape[1], frames.shape[2])
    check_seams(seams, frames.shape[0])
    by_index = {rec["seam_index"]: rec for rec in concat_info or []}
    seam_metrics, reasons, failed = [], [], []
    for s in sorted(set(seams)):
        m, problems = judge_seam(frames, s, thresholds)
        if s in by_index:
            m["concat"] = {k: v for k, v in by_index[s].items() if k != "seam_index"}
        seam_metrics.append(m)
        if problems:
            failed.append(s)
            reasons.append(f"seam {s - 1}->{s}: " + ", ".join(problems))
    return GateResult(
        name=name,
        passed=not failed,
        metrics={"n_frames": int(frames.shape[0]), "seams": seam_metrics},
        thresholds={f.name: getattr(thresholds, f.name) for f in fields(thresholds)},
        failed_frames=failed,
        reasons=reasons,
    )
