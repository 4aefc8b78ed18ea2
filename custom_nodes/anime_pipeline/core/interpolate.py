"""Frame interpolation behind a small pluggable interface.

``Interpolator`` is the contract the retimer uses: ``interpolate(a, b, ts)``
returns one frame per phase ``t`` in ``(0, 1)`` between frames ``a`` (t=0) and
``b`` (t=1). Frames are ``float32 [H, W, 3]`` in 0..1 (a ComfyUI IMAGE frame as
numpy); ``out`` may be given to write the results in place (e.g. straight into
a preallocated output tensor). A learned model (RIFE, FILM) plugs in by
implementing the same method; nothing else changes.

:class:`FlowInterpolator` is the weight-free default:

1. DIS optical flow both ways (``F01``, ``F10``) on luma, at reduced resolution
   (long side ``flow_size``).
2. Flows from the intermediate frame by the Super-SloMo approximation
   ``F_t0 = -(1-t) t F01 + t^2 F10``, ``F_t1 = (1-t)^2 F01 - t (1-t) F10``.
3. Backward-warp both frames to ``t`` (``cv2.remap`` on 8-bit frames) and blend
   ``(1-t) A_t + t B_t``.

Two refinements are available and off by default because they measured worse
on real clips (benchmarks/bench_interp.py, PSNR and SSIM): ``occlusion_px``
(forward-backward consistency gives each source a visibility map carried to
``t``, so a pixel that disappears is taken from the side where it is visible)
and ``line_guard`` (where the two warped candidates still disagree strongly,
the temporally nearer one is used instead of an average, so a mis-registered
line is drawn once instead of twice, at some cost in PSNR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .flow import PRESETS, consistency_error, dis_flow, remap, sampling_map, warp

__all__ = ["Interpolator", "FlowInterpolator", "LinearBlend"]


@runtime_checkable
class Interpolator(Protocol):
    """Anything that can synthesise frames between two frames."""

    name: str

    def interpolate(self, a: np.ndarray, b: np.ndarray, ts: Sequence[float], out: np.ndarray | None = None) -> np.ndarray:
        """Frames at phases ``ts`` (each in (0, 1)) as ``float32 [len(ts), H, W, 3]``."""
        ...


def _out_buffer(a: np.ndarray, ts: Sequence[float], out: np.ndarray | None) -> np.ndarray:
    shape = (len(ts), *a.shape)
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {list(shape)}, got {out.dtype} {list(out.shape)}")
    return out


class LinearBlend:
    """Cross-fade ``(1-t) a + t b``: the baseline, and a safe fallback."""

    name = "linear_blend"

    def interpolate(self, a, b, ts, out=None):
        out = _out_buffer(a, ts, out)
        for k, t in enumerate(ts):
            cv2.addWeighted(a, 1.0 - float(t), b, float(t), 0.0, dst=out[k])
        return out


class FlowInterpolator:
    """Bidirectional DIS-flow interpolation (see the module doc).

    ``preset``: DIS preset (``medium`` is ~0.3 dB better and ~3x slower than ``fast``).
    ``flow_size``: flow is estimated with the frame's long side reduced to this many
    pixels (never enlarged). ``occlusion_px``: forward-backward error scale (px) of the
    visibility weights (``0`` disables). ``line_guard``: luma disagreement (0..1) above
    which the nearer warped frame replaces the blend (``0`` disables).
    ``finest_scale``: DIS pyramid level the flow is refined down to (``None``: the preset's;
    ``1`` with ``flow_size=256`` measured +0.1 dB at t=1/2 but ~1.5x the time)."""

    name = "dis_flow"

    def __init__(
        self,
        *,
        preset: str = "fast",
        flow_size: int = 640,
        occlusion_px: float = 0.0,
        line_guard: float = 0.0,
        finest_scale: int | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.preset = preset
        self.finest_scale = finest_scale
        self.flow_size = int(flow_size)
        self.occlusion_px = float(occlusion_px)
        self.line_guard = float(line_guard)

    # -- flow -------------------------------------------------------------------------
    def _grey(self, frame8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if frame8.shape[:2] != size:
            frame8 = cv2.resize(frame8, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(frame8, cv2.COLOR_RGB2GRAY)

    def flows(self, a8: np.ndarray, b8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(F01, F10)`` of two ``uint8`` frames at the working resolution (long side <= ``flow_size``)."""
        h, w = a8.shape[:2]
        s = min(1.0, self.flow_size / max(h, w))
        size = (max(16, round(h * s)), max(16, round(w * s)))
        ga, gb = self._grey(a8, size), self._grey(b8, size)
        return (dis_flow(ga, gb, self.preset, finest_scale=self.finest_scale),
                dis_flow(gb, ga, self.preset, finest_scale=self.finest_scale))

    # -- synthesis ----------------------------------------------------------------------
    def interpolate(self, a, b, ts, out=None):
        out = _out_buffer(a, ts, out)
        if not len(ts):
            return out
        bad = [float(t) for t in ts if not 0.0 < float(t) < 1.0]
        if bad:
            raise ValueError(f"interpolation phases must be in (0, 1), got {bad}")
        # Warping 8-bit frames moves a quarter of the bytes of float32; the result is
        # written back as float (interpolated frames are quantised to 1/255, copies are not).
        a8, b8 = _to_uint8(a), _to_uint8(b)
        h, w = a.shape[:2]
        f01, f10 = self.flows(a8, b8)
        if self.occlusion_px > 0:
            vis0 = np.exp(-consistency_error(f01, f10) / self.occlusion_px).astype(np.float32)
            vis1 = np.exp(-consistency_error(f10, f01) / self.occlusion_px).astype(np.float32)
        for k, t in enumerate(map(float, ts)):
            ft0 = (-(1 - t) * t) * f01 + (t * t) * f10
            ft1 = ((1 - t) * (1 - t)) * f01 - (t * (1 - t)) * f10
            a_t = remap(a8, sampling_map(ft0, h, w))
            b_t = remap(b8, sampling_map(ft1, h, w))
            if self.occlusion_px <= 0 and self.line_guard <= 0:
                cv2.addWeighted(a_t, (1 - t) / 255.0, b_t, t / 255.0, 0.0, dst=out[k], dtype=cv2.CV_32F)
                continue
            wa = np.full(f01.shape[:2], 1 - t, np.float32)
            if self.occlusion_px > 0:
                # Visibility of each source pixel, carried to time t along the same flow.
                v0 = (1 - t) * warp(vis0, ft0) + 1e-3
                v1 = t * warp(vis1, ft1) + 1e-3
                wa = v0 / (v0 + v1)
            wa = cv2.resize(wa, (w, h), interpolation=cv2.INTER_LINEAR)
            if self.line_guard > 0:
                diff = cv2.absdiff(cv2.cvtColor(a_t, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b_t, cv2.COLOR_RGB2GRAY))
                # Soft switch from blending to the nearer frame where the candidates disagree.
                guard = 255.0 * self.line_guard
                sel = np.clip((diff.astype(np.float32) - 0.5 * guard) / (0.5 * guard), 0.0, 1.0)
                wa += sel * ((1.0 if t < 0.5 else 0.0) - wa)
            np.subtract(a_t, b_t, out=out[k], dtype=np.float32)
            out[k] *= wa[..., None]
            out[k] += b_t
            out[k] *= 1 / 255.0
        return out


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    """float 0..1 -> uint8 (rounded, saturated: negatives give 0); uint8 passes through."""
    if frame.dtype == np.uint8:
        return frame
    # One saturating pass (convertScaleAbs would mirror negative values and need a min() pass).
    return cv2.multiply(np.asarray(frame, np.float32), 255.0, dtype=cv2.CV_8U)
