"""Frame interpolation behind a small pluggable interface.

``Interpolator`` is the contract the retimer uses: ``interpolate(a, b, ts)``
returns one frame per phase ``t`` in ``(0, 1)`` between frames ``a`` (t=0) and
``b`` (t=1). Frames are ``float32 [H, W, 3]`` in 0..1 (a ComfyUI IMAGE frame as
numpy); ``out`` may be given to write the results in place (e.g. straight into
a preallocated output tensor). A learned model (RIFE, FILM) plugs in by
implementing the same method; nothing else changes.

:class:`FlowInterpolator` is the weight-free default:

1. DIS optical flow both ways (``F01``, ``F10``) on luma, at reduced resolution
   (long side ``flow_size``, default 192 px), refined down to that resolution
   (``finest_scale=0``; the ultrafast preset's patch search, no variational step).
2. Flows from the intermediate frame by the Super-SloMo approximation
   ``F_t0 = -(1-t) t F01 + t^2 F10``, ``F_t1 = (1-t)^2 F01 - t (1-t) F10``
   (or, with ``intermediate="splat"``, by flow reversal: :func:`splat_intermediate_flows`).
3. Backward-warp both frames to ``t`` (``cv2.remap`` on 8-bit frames) and blend
   ``(1-t) A_t + t B_t``.
4. Steps 1-3 are repeated with the flow at each of ``extra_flow_sizes`` (default
   128 px) and the warped frames are averaged: two flow estimates of different
   resolution err in different places, and the mean of the two syntheses is the
   better prediction where they disagree (it softens such places instead of
   committing to one wrong position); where they agree it changes nothing.

The defaults, and the two refinements below (off by default: they measured worse
on real clips), were chosen with ``benchmarks/bench_interp.py``; the figures are in
``docs/lab_notes.md``. ``occlusion_px`` (forward-backward consistency gives each source
a visibility map carried to ``t``, so a pixel that disappears is taken from the side
where it is visible) and ``line_guard`` (where the two warped candidates still disagree
strongly, the temporally nearer one is used instead of an average, so a mis-registered
line is drawn once instead of twice) use the ``flow_size`` estimate only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .flow import PRESETS, consistency_error, dis_flow, pixel_grid, remap, sampling_map, warp

__all__ = ["Interpolator", "FlowInterpolator", "LinearBlend", "linear_intermediate_flows", "splat_intermediate_flows"]


@runtime_checkable
class Interpolator(Protocol):
    """Anything that can synthesise frames between two frames."""

    name: str

    def interpolate(self, a: np.ndarray, b: np.ndarray, ts: Sequence[float],
                    out: np.ndarray | None = None) -> np.ndarray:
        """Frames at phases ``ts`` (each in (0, 1)) as ``float32 [len(ts), H, W, 3]``."""
        ...


def _out_buffer(a: np.ndarray, ts: Sequence[float], out: np.ndarray | None) -> np.ndarray:
    shape = (len(ts), *a.shape)
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {list(shape)}, got {out.dtype} {list(out.shape)}")
    return out


def linear_intermediate_flows(f01: np.ndarray, f10: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``(F_t0, F_t1)`` by the Super-SloMo approximation (flows sampled at the pixel itself)."""
    ft0 = cv2.addWeighted(f01, -(1 - t) * t, f10, t * t, 0.0)
    ft1 = cv2.addWeighted(f01, (1 - t) * (1 - t), f10, -t * (1 - t), 0.0)
    return ft0, ft1


def splat_intermediate_flows(
    f01: np.ndarray, f10: np.ndarray, t: float, *, consistency_px: float = 1.0, fill: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """``(F_t0, F_t1)`` by flow reversal: every pixel of frame 0 carries its velocity ``F01`` to
    where it is at ``t`` (``x + t F01``), every pixel of frame 1 carries ``-F10`` to
    ``y + (1-t) F10``; the velocities are bilinearly splatted, weighted by temporal nearness
    (``1-t`` / ``t``) and forward-backward consistency ``exp(-err / consistency_px)``, and the
    velocity ``v`` at each pixel gives ``F_t0 = -t v``, ``F_t1 = (1-t) v``. Where little or
    nothing lands (splat weight below ``fill``) the linear approximation fills in."""
    h, w = f01.shape[:2]
    grid = pixel_grid(h, w)
    scale = np.float32(-1.0 / consistency_px)
    wgt = np.concatenate([(np.exp(consistency_error(f01, f10) * scale) * np.float32(1 - t)).ravel(),
                          (np.exp(consistency_error(f10, f01) * scale) * np.float32(t)).ravel()])
    pos = np.concatenate([cv2.scaleAdd(f01, t, grid).reshape(-1, 2), cv2.scaleAdd(f10, 1 - t, grid).reshape(-1, 2)])
    vel = np.concatenate([f01.reshape(-1, 2), -f10.reshape(-1, 2)])
    # Splat onto a canvas with a 1 px margin (cropped afterwards); what lands further out is dropped.
    px, py = pos[:, 0], pos[:, 1]
    wgt[~((px > -1) & (px < w) & (py > -1) & (py < h))] = 0
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = px - x0, py - y0
    wp, n = w + 2, (h + 2) * (w + 2)
    i00 = (np.clip(y0, -1, h - 1).astype(np.intp) + 1) * wp + np.clip(x0, -1, w - 1).astype(np.intp) + 1
    wvx, wvy = wgt * vel[:, 0], wgt * vel[:, 1]
    acc = np.zeros((3, n))
    for off, bw in ((0, (1 - fx) * (1 - fy)), (1, fx * (1 - fy)), (wp, (1 - fx) * fy), (wp + 1, fx * fy)):
        for c, q in enumerate((wgt, wvx, wvy)):
            acc[c] += np.bincount(i00 + off, bw * q, n)
    acc = acc.reshape(3, h + 2, w + 2)[:, 1:-1, 1:-1].reshape(3, -1)
    wsum = acc[0]
    v = acc[1:].T / np.maximum(wsum, 1e-12)[:, None]
    ft0, ft1 = linear_intermediate_flows(f01, f10, t)
    approx = (ft1 - ft0).reshape(-1, 2)
    a = np.clip(wsum / fill, 0.0, 1.0)[:, None]
    v = (a * v + (1 - a) * approx).astype(np.float32).reshape(h, w, 2)
    return v * np.float32(-t), v * np.float32(1 - t)


class LinearBlend:
    """Cross-fade ``(1-t) a + t b``: the baseline, and a safe fallback."""

    name = "linear_blend"

    def interpolate(self, a, b, ts, out=None):
        out = _out_buffer(a, ts, out)
        for k, t in enumerate(ts):
            cv2.addWeighted(a, 1.0 - float(t), b, float(t), 0.0, dst=out[k])
        return out


class FlowInterpolator:
    """Bidirectional DIS-flow interpolation (see the module doc for how defaults were chosen).

    ``preset``: DIS preset (its patch search parameters). ``flow_size``: flow is estimated
    with the frame's long side reduced to this many pixels (never enlarged).
    ``finest_scale``: DIS pyramid level the flow is refined down to (``None``: the preset's,
    ``0``: the working resolution itself). ``patch_stride`` / ``refine_iters``: override the
    preset's patch stride / variational refinement iterations (``None``: the preset's).
    ``intermediate``: ``"linear"`` (Super-SloMo approximation) or ``"splat"`` (flow reversal).
    ``extra_flow_sizes``: further flow resolutions whose syntheses are averaged with the
    ``flow_size`` one (``()``: a single estimate). ``occlusion_px``: forward-backward error
    scale (px) of the visibility weights (``0`` disables). ``line_guard``: luma disagreement
    (0..1) above which the nearer warped frame replaces the blend (``0`` disables)."""

    name = "dis_flow"
    takes_uint8 = True  # ``interpolate`` also accepts uint8 frames (what it converts float ones to)

    def __init__(
        self,
        *,
        preset: str = "ultrafast",
        flow_size: int = 192,
        occlusion_px: float = 0.0,
        line_guard: float = 0.0,
        finest_scale: int | None = 0,
        patch_stride: int | None = None,
        refine_iters: int | None = None,
        intermediate: str = "linear",
        extra_flow_sizes: Sequence[int] = (128,),
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if intermediate not in ("linear", "splat"):
            raise ValueError(f"intermediate must be 'linear' or 'splat', got {intermediate!r}")
        self.preset = preset
        self.finest_scale = finest_scale
        self.patch_stride = patch_stride
        self.refine_iters = refine_iters
        self.intermediate = intermediate
        self.extra_flow_sizes = tuple(int(x) for x in extra_flow_sizes)
        self.flow_size = int(flow_size)
        self.occlusion_px = float(occlusion_px)
        self.line_guard = float(line_guard)
        self._scratch = _Scratch()

    # -- flow -------------------------------------------------------------------------
    def flows(self, a8: np.ndarray, b8: np.ndarray, flow_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(F01, F10)`` of two ``uint8`` frames (RGB, or grey ``[H, W]``) at the working resolution
        (long side <= ``flow_size``, default ``self.flow_size``)."""
        h, w = a8.shape[:2]
        s = min(1.0, (flow_size or self.flow_size) / max(h, w))
        size = (max(16, round(h * s)), max(16, round(w * s)))
        grey = []
        for f in (a8, b8):
            # luma first: the resize moves 1/3 of the bytes
            g = f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            grey.append(g if g.shape == size else cv2.resize(g, (size[1], size[0]), interpolation=cv2.INTER_AREA))
        ga, gb = grey
        opts = dict(finest_scale=self.finest_scale, patch_stride=self.patch_stride, refine_iters=self.refine_iters)
        return dis_flow(ga, gb, self.preset, **opts), dis_flow(gb, ga, self.preset, **opts)

    def _phase_flows(self, f01: np.ndarray, f10: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        if self.intermediate == "splat":
            return splat_intermediate_flows(f01, f10, t)
        return linear_intermediate_flows(f01, f10, t)

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
        if self.occlusion_px <= 0 and self.line_guard <= 0:
            return self._blend(a8, b8, ts, out)
        f01, f10 = self.flows(a8, b8)
        if self.occlusion_px > 0:
            vis0 = np.exp(-consistency_error(f01, f10) / self.occlusion_px).astype(np.float32)
            vis1 = np.exp(-consistency_error(f10, f01) / self.occlusion_px).astype(np.float32)
        for k, t in enumerate(map(float, ts)):
            ft0, ft1 = self._phase_flows(f01, f10, t)
            a_t = remap(a8, sampling_map(ft0, h, w))
            b_t = remap(b8, sampling_map(ft1, h, w))
            wa: np.ndarray = np.full(f01.shape[:2], 1 - t, np.float32)
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

    def _blend(self, a8: np.ndarray, b8: np.ndarray, ts: Sequence[float], out: np.ndarray) -> np.ndarray:
        """Plain synthesis ``(1-t) A_t + t B_t``, averaged over the flow estimates (``flow_size``
        and each of ``extra_flow_sizes``). The full-size intermediates live in this thread's
        scratch arrays (:class:`_Scratch`), reused from pair to pair."""
        h, w = a8.shape[:2]
        sizes = dict.fromkeys(min(int(x), max(h, w)) for x in (self.flow_size, *self.extra_flow_sizes))  # distinct
        scratch = self._scratch
        ga, gb = (f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY, dst=scratch.get(name, (h, w)))
                  for f, name in ((a8, "grey_a"), (b8, "grey_b")))  # once for all sizes
        members = [self.flows(ga, gb, size) for size in sizes]
        # RGB uint8 is warped as RGBA (OpenCV's vectorised remap path), converted once per call;
        # the estimates are averaged in 8 bits (one rounding, < 0.01 dB), then blended to float.
        rgba = a8.ndim == 3 and a8.shape[2] == 3
        if rgba:
            src_a = cv2.cvtColor(a8, cv2.COLOR_RGB2RGBA, dst=scratch.get("src_a", (h, w, 4)))
            src_b = cv2.cvtColor(b8, cv2.COLOR_RGB2RGBA, dst=scratch.get("src_b", (h, w, 4)))
        else:
            src_a, src_b = a8, b8
        coords = scratch.get("coords", (h, w, 2), np.float32)
        for k, t in enumerate(map(float, ts)):
            a_t, b_t = scratch.get("a_t", src_a.shape), scratch.get("b_t", src_b.shape)  # the running means
            for i, (f01, f10) in enumerate(members, 1):
                ft0, ft1 = self._phase_flows(f01, f10, t)
                if i == 1:  # the first estimate is warped straight into the means
                    remap(src_a, sampling_map(ft0, h, w, out=coords), out=a_t)
                    remap(src_b, sampling_map(ft1, h, w, out=coords), out=b_t)
                    continue
                a_i = remap(src_a, sampling_map(ft0, h, w, out=coords), out=scratch.get("a_i", src_a.shape))
                b_i = remap(src_b, sampling_map(ft1, h, w, out=coords), out=scratch.get("b_i", src_b.shape))
                cv2.addWeighted(a_t, 1 - 1 / i, a_i, 1 / i, 0.0, dst=a_t)
                cv2.addWeighted(b_t, 1 - 1 / i, b_i, 1 / i, 0.0, dst=b_t)
            if rgba:
                a_t = cv2.cvtColor(a_t, cv2.COLOR_RGBA2RGB, dst=scratch.get("a_rgb", (h, w, 3)))
                b_t = cv2.cvtColor(b_t, cv2.COLOR_RGBA2RGB, dst=scratch.get("b_rgb", (h, w, 3)))
            cv2.addWeighted(a_t, (1 - t) / 255.0, b_t, t / 255.0, 0.0, dst=out[k], dtype=cv2.CV_32F)
        return out


class _Scratch(threading.local):
    """Full-size work arrays of one thread, by name, reused while their shape and type hold.

    A fresh full-size array costs its first-touch page faults: at 1280x720 one interpolated
    frame allocated about 9,000 pages, 30 of its 86 ms on a 2-core VM (52 ms without). Held
    by the interpolator, so they go with it (ComfyUI drops the node's interpolator after the
    node runs) and with the worker thread."""

    def get(self, name: str, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        buf = self.__dict__.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self.__dict__[name] = buf
        return buf


def _to_uint8(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float 0..1 -> uint8 (rounded, saturated: negatives give 0), into ``out`` when given; uint8
    passes through as it is."""
    if frame.dtype == np.uint8:
        return frame
    # One saturating pass (convertScaleAbs would mirror negative values and need a min() pass).
    return cv2.multiply(np.asarray(frame, np.float32), 255.0, dst=out, dtype=cv2.CV_8U)
