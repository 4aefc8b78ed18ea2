"""Held-frame push ("Ken Burns"): a still keyframe becomes a clip with a continuous zoom and pan.

Geometry (all continuous, no rounding anywhere):

* The still has ``W x H`` pixels; a point of it is given in normalized coordinates
  ``(x, y)`` in ``0..1`` (pixel edges at 0 and 1, so ``(0.5, 0.5)`` is the centre).
* At zoom 1 the still is scaled by ``cover = max(out_w / W, out_h / H)`` so that it just
  covers the output frame; at zoom ``z`` by ``cover * z`` output pixels per still pixel.
* Frame ``i`` of ``n`` has progress ``t = i / (n - 1)`` shaped by the easing (``linear`` or
  ``ease_in_out`` = ``(1 - cos(pi t)) / 2``). The zoom is interpolated geometrically,
  ``z = z0 * (z1 / z0) ** t``, so the push has a constant apparent speed; the centre
  linearly. The centre is then clamped so the view stays inside the still (where the view is
  larger than the still, zoom < 1, it is centred and the outside is black; edge pixels
  are extended, not darkened, for the taps that reach past the still's border).
* Output pixel centre ``(u + 0.5, v + 0.5)`` shows still point
  ``centre + ((u + 0.5 - out_w / 2) / (cover z W), (v + 0.5 - out_h / 2) / (cover z H))``.
  The transform is a scale plus a translation, so it is resampled separably (two sparse
  matrix products per frame) with a
  ``bilinear`` (triangle) or ``bicubic`` (Catmull-Rom, Keys a = -0.5) kernel at exactly that
  position. When the frame reduces the still (scale < 1) the kernel is widened by 1 / scale,
  an antialiasing prefilter matched to each frame's exact scale (no mip levels, no pops).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .validate import InputError, check_budget, check_images, check_positive, frames_bytes

EASINGS = ("linear", "ease_in_out")
SAMPLINGS = ("bicubic", "bilinear")
PROGRESS_EVERY = 8  # frames between progress callbacks


@dataclass(frozen=True)
class PushState:
    """Zoom and view centre (normalized still coordinates) of one frame."""

    zoom: float
    cx: float
    cy: float


def _ease(t: float, easing: str) -> float:
    return t if easing == "linear" else (1 - math.cos(math.pi * t)) / 2


def _clamp_centre(c: float, half: float) -> float:
    return 0.5 if half >= 0.5 else min(max(c, half), 1 - half)


def trajectory(
    n_frames: int,
    still_size: tuple[int, int],
    out_size: tuple[int, int],
    zoom_start: float,
    zoom_end: float,
    center_start: tuple[float, float],
    center_end: tuple[float, float],
    easing: str = "ease_in_out",
) -> list[PushState]:
    """The exact per-frame zoom and centre (see the module docstring)."""
    (w, h), (ow, oh) = still_size, out_size
    cover = max(ow / w, oh / h)
    states = []
    for i in range(n_frames):
        t = _ease(i / (n_frames - 1) if n_frames > 1 else 0.0, easing)
        z = zoom_start * (zoom_end / zoom_start) ** t
        half_x, half_y = ow / (2 * cover * z * w), oh / (2 * cover * z * h)
        cx = _clamp_centre(center_start[0] + (center_end[0] - center_start[0]) * t, half_x)
        cy = _clamp_centre(center_start[1] + (center_end[1] - center_start[1]) * t, half_y)
        states.append(PushState(z, cx, cy))
    return states


def inverse_matrix(state: PushState, still_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """2x3 matrix mapping output pixel coordinates to still pixel coordinates (pixel centres
    at integers, OpenCV's convention: ``cv2.warpAffine(still, M, out, flags=WARP_INVERSE_MAP)``)."""
    (w, h), (ow, oh) = still_size, out_size
    s = max(ow / w, oh / h) * state.zoom
    return np.array([
        [1 / s, 0.0, state.cx * w - 0.5 + (0.5 - ow / 2) / s],
        [0.0, 1 / s, state.cy * h - 0.5 + (0.5 - oh / 2) / s],
    ])


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp_min(0)


def _catmull_rom(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic with a = -0.5: reproduces linear and quadratic ramps exactly, so edges move
    by exactly the requested sub-pixel offset (a = -0.75, OpenCV's and PyTorch's bicubic,
    shifts them by up to ~0.08 px depending on the phase: visible as wobble in slow pans)."""
    x = x.abs()
    near = (1.5 * x - 2.5) * x * x + 1
    far = ((-0.5 * x + 2.5) * x - 4) * x + 2
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


KERNELS = {"bilinear": (1.0, _triangle), "bicubic": (2.0, _catmull_rom)}


def _axis_taps(n_out: int, n_in: int, scale: float, centre: float, sampling: str, device):
    """Source indices, weights ``[n_out, taps]`` and the inside-the-still mask for one axis.

    Output pixel ``u`` samples the still at ``(u + 0.5 - n_out / 2) / scale + centre * n_in``
    (pixel edges at integers). When reducing, the kernel is widened by ``1 / scale`` (an
    antialiasing prefilter matched to the frame's exact scale)."""
    support, kernel = KERNELS[sampling]
    width = max(1.0, 1.0 / scale)
    x = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5 - n_out / 2) / scale + centre * n_in - 0.5
    reach = support * width
    taps = math.ceil(2 * reach) + 1
    k = torch.floor(x - reach)[:, None] + 1 + torch.arange(taps, dtype=torch.float64, device=device)
    w = kernel((k - x[:, None]) / width)
    w = w / w.sum(dim=1, keepdim=True)
    inside = (x >= -0.5) & (x <= n_in - 0.5)
    return k.clamp(0, n_in - 1).long(), w.float(), inside


def _axis_matrix(n_out: int, n_in: int, scale: float, centre: float, sampling: str, device):
    """Sparse ``[n_out, n_in]`` resampling matrix of one axis and its inside-the-still mask."""
    idx, w, inside = _axis_taps(n_out, n_in, scale, centre, sampling, device)
    rows = torch.arange(n_out, device=device).repeat_interleave(idx.shape[1])
    # indices are built in range and sorted: skip torch's invariant check (it costs ~10 ms)
    matrix = torch.sparse_coo_tensor(torch.stack([rows, idx.flatten()]), w.flatten(), (n_out, n_in),
                                     check_invariants=False)
    return matrix.coalesce(), inside  # coalescing sums the taps clamped onto the edge pixel


def render_push(
    still: torch.Tensor,
    out_size: tuple[int, int],
    states: list[PushState],
    sampling: str = "bicubic",
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Render ``states`` of the still ``[1,H,W,C]`` at ``out_size`` -> ``[n, oh, ow, C]`` on the still's device.

    The transform is a scale and a translation, so it is applied separably as two sparse
    matrix products (rows, then columns): exact positions, exact per-frame antialiasing,
    edge pixels extended, black outside the still."""
    _, h, w, c = still.shape
    ow, oh = out_size
    cover = max(ow / w, oh / h)
    src = still[0].float().reshape(h, w * c)
    out = torch.empty((len(states), oh, ow, c), dtype=torch.float32, device=still.device)
    for i, st in enumerate(states):
        s = cover * st.zoom
        rows, in_y = _axis_matrix(oh, h, s, st.cy, sampling, still.device)
        cols, in_x = _axis_matrix(ow, w, s, st.cx, sampling, still.device)
        tall = torch.sparse.mm(rows, src).view(oh, w, c).transpose(0, 1).reshape(w, oh * c)
        frame = torch.sparse.mm(cols, tall).view(ow, oh, c).transpose(0, 1)
        out[i] = frame
        out[i].clamp_(0, 1)
        if not (in_x.all() and in_y.all()):
            out[i].mul_((in_y[:, None, None] & in_x[None, :, None]).float())
        if progress is not None and (i + 1 == len(states) or (i + 1) % PROGRESS_EVERY == 0):
            progress(i + 1, len(states))
    return out


def held_frame_push(
    image: torch.Tensor,
    duration_s: float,
    fps: float,
    width: int = 0,
    height: int = 0,
    zoom_start: float = 1.0,
    zoom_end: float = 1.1,
    center_start: tuple[float, float] = (0.5, 0.5),
    center_end: tuple[float, float] = (0.5, 0.5),
    easing: str = "ease_in_out",
    sampling: str = "bicubic",
    *,
    node: str | None = None,
    device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    budget: tuple[int, str] | None = None,
) -> torch.Tensor:
    """``round(duration_s * fps)`` frames of a push over the still ``image`` ``[1,H,W,3]``.

    ``width``/``height`` 0 keep the still's size. Returns ``[n, height, width, 3]`` on the CPU.
    ``budget`` (bytes, where it came from): a larger output is refused before it is allocated."""
    image = check_images(image, "image", node=node)
    if image.shape[0] != 1:
        raise InputError("image", f"expects one still, got a batch of {image.shape[0]}; pick one frame first", node)
    duration_s = check_positive(duration_s, "duration_s", node=node)
    fps = check_positive(fps, "fps", node=node)
    zoom_start = check_positive(zoom_start, "zoom_start", node=node)
    zoom_end = check_positive(zoom_end, "zoom_end", node=node)
    for name, value in (("center_x_start", center_start[0]), ("center_y_start", center_start[1]),
                        ("center_x_end", center_end[0]), ("center_y_end", center_end[1])):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise InputError(name, f"must be a finite number (0..1 across the still), got {value!r}", node)
    if easing not in EASINGS:
        raise InputError("easing", f"must be one of {list(EASINGS)}, got {easing!r}", node)
    if sampling not in SAMPLINGS:
        raise InputError("sampling", f"must be one of {list(SAMPLINGS)}, got {sampling!r}", node)
    for name, value in (("width", width), ("height", height)):
        if int(value) != value or value < 0:
            raise InputError(name, f"must be a whole number of pixels >= 0 (0 = the still's), got {value!r}", node)
    n = math.floor(duration_s * fps + 0.5)
    if n < 1:
        raise InputError("duration_s", f"{duration_s} s x {fps} fps rounds to {n} frames; need at least 1", node)
    _, h, w, _ = image.shape
    out_size = (int(width) or w, int(height) or h)
    if budget is not None:
        check_budget(frames_bytes(n, out_size[1], out_size[0], image.shape[3]), budget[0],
                     f"{n} frames of {out_size[0]}x{out_size[1]}", "width" if width else "duration_s", node=node,
                     budget_from=budget[1])
    states = trajectory(n, (w, h), out_size, zoom_start, zoom_end, center_start, center_end, easing)
    still = image.to(device) if device is not None else image
    return render_push(still, out_size, states, sampling, progress).cpu()
