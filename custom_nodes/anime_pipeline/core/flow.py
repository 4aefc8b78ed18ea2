"""Dense optical flow (OpenCV DIS), backward warping and warping error.

Small, stable API shared by the motion gating / interpolation code and the
quality gates (flow-compensated flicker). Everything works on numpy arrays:

``compute_flow(a, b, *, scale=0.5, preset="fast") -> flow``
    Flow from ``a`` to ``b`` as ``float32 [H, W, 2]`` (dx, dy in pixels of the
    full-resolution frame): ``a[y, x] ~ b[y + dy, x + dx]``. ``a``/``b`` are
    ``uint8`` greyscale ``[H, W]`` or RGB ``[H, W, 3]`` (converted with BT.601
    luma). The flow is computed at ``scale`` x the resolution (INTER_AREA
    downscale) and resized back, with the vectors rescaled to full-resolution
    pixels. ``preset`` is ``"ultrafast"``, ``"fast"`` or ``"medium"``.

``warp(image, flow) -> image``
    Backward warp: ``out[y, x] = image[y + dy, x + dx]`` (bilinear, border
    replicated; same dtype and shape as ``image``). Hence
    ``warp(b, compute_flow(a, b)) ~ a``.

``sampling_map(flow, height, width)`` / ``remap(image, coords)``
    The same warp in two steps, for a flow estimated at reduced resolution:
    absolute remap coordinates at ``height`` x ``width`` (resized and rescaled
    in one pass), then a bilinear remap (RGB ``uint8`` goes through RGBA,
    OpenCV's vectorised path). Both take ``out=`` to write into a reused array:
    on a VM a fresh full-size array costs more in page faults than the pass
    that fills it.

``consistency_error(flow_ab, flow_ba) -> float32 [H, W]``
    Forward-backward error ``|F_ab(x) + F_ba(x + F_ab(x))|`` in pixels: large
    where a pixel of ``a`` is occluded in ``b`` (or the flow is wrong).

``warping_error(prev, cur, *, occlusion_px=1.0, scale=0.5, preset="fast") -> float``
    Motion-compensated temporal error of one interval (Lai et al. 2018): warp
    ``prev`` onto ``cur`` with the flow ``cur -> prev``, ignore pixels whose
    forward-backward error exceeds ``occlusion_px``, return the mean absolute
    RGB (or grey) error in 0..1 (i.e. divided by 255). Steady content gives a
    small value even under motion; flicker, boiling and artifacts raise it.

``to_grey(frame)``
    ``uint8`` ``[H, W]`` luma of a grey or RGB ``uint8`` frame.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# DIS refuses images with both sides < 12 px; below this working size the flow is
# computed at full resolution instead of being downscaled further.
_MIN_FLOW_SIDE = 32


def to_grey(frame: np.ndarray) -> np.ndarray:
    """``uint8`` luma ``[H, W]`` of a ``uint8`` grey ``[H, W]`` or RGB ``[H, W, 3]`` frame."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected a grey [H,W] or RGB [H,W,3] frame, got shape {list(frame.shape)}")


def flow_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Working ``(height, width)`` at which :func:`compute_flow` estimates flow."""
    if not 0 < scale <= 1:
        raise ValueError(f"flow scale must be in (0, 1], got {scale}")
    if min(height, width) * scale < _MIN_FLOW_SIDE:
        scale = min(1.0, _MIN_FLOW_SIDE / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def compute_flow(a: np.ndarray, b: np.ndarray, *, scale: float = 0.5, preset: str = "fast") -> np.ndarray:
    """Dense flow ``a -> b`` (``float32 [H, W, 2]``, full-resolution pixels); see the module doc."""
    if preset not in PRESETS:
        raise ValueError(f"flow preset must be one of {sorted(PRESETS)}, got {preset!r}")
    ga, gb = to_grey(a), to_grey(b)
    if ga.shape != gb.shape:
        raise ValueError(f"flow needs frames of one size, got {list(ga.shape)} and {list(gb.shape)}")
    h, w = ga.shape
    if max(h, w) < 12:  # too small for DIS: no measurable motion
        return np.zeros((h, w, 2), np.float32)
    fh, fw = flow_size(h, w, scale)
    if (fh, fw) != (h, w):
        ga = cv2.resize(ga, (fw, fh), interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, (fw, fh), interpolation=cv2.INTER_AREA)
    flow = dis_flow(ga, gb, preset)
    return upscale_flow(flow, h, w)


# OpenCV's DIS crashes the whole process (segfault, not an exception) on some thin
# working sizes (e.g. 20x160 or 160x6); pad every side to at least this, then crop.
_DIS_SAFE_SIDE = 32


def dis_flow(
    ga: np.ndarray,
    gb: np.ndarray,
    preset: str = "fast",
    *,
    finest_scale: int | None = None,
    patch_stride: int | None = None,
    refine_iters: int | None = None,
) -> np.ndarray:
    """OpenCV DIS flow ``ga -> gb`` of two same-size ``uint8`` grey images, at their size,
    safe on every size (thin images are padded, then the flow is cropped). ``finest_scale``,
    ``patch_stride`` and ``refine_iters`` (variational refinement iterations) override the
    preset's values when given."""
    h, w = ga.shape
    pad_y, pad_x = max(0, _DIS_SAFE_SIDE - h), max(0, _DIS_SAFE_SIDE - w)
    if pad_y or pad_x:
        ga = cv2.copyMakeBorder(ga, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        gb = cv2.copyMakeBorder(gb, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    return _dis_instance(preset, finest_scale, patch_stride, refine_iters).calc(ga, gb, None)[:h, :w]


_DIS_CACHE = threading.local()


def _dis_instance(preset: str, finest_scale: int | None, patch_stride: int | None, refine_iters: int | None):
    """A DIS object with these settings, one per thread and setting (an instance is not
    thread-safe; creating one cost about 10 us against 130-200 us for a 160x90 flow)."""
    cache = _DIS_CACHE.__dict__.setdefault("instances", {})
    key = (preset, finest_scale, patch_stride, refine_iters)
    dis = cache.get(key)
    if dis is None:
        dis = cv2.DISOpticalFlow_create(PRESETS[preset])  # type: ignore[attr-defined]  # not in the stubs
        if finest_scale is not None:
            dis.setFinestScale(int(finest_scale))
        if patch_stride is not None:
            dis.setPatchStride(int(patch_stride))
        if refine_iters is not None:
            dis.setVariationalRefinementIterations(int(refine_iters))
        if len(cache) >= 8:
            cache.clear()
        cache[key] = dis
    return dis


def upscale_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a flow field to ``height`` x ``width`` and rescale its vectors accordingly."""
    fh, fw = flow.shape[:2]
    if (fh, fw) == (height, width):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / fw
    out[..., 1] *= height / fh
    return out


@functools.lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """Read-only ``float32 [H, W, 2]`` pixel coordinates ``(x, y)`` (cached)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def sampling_map(flow: np.ndarray, height: int | None = None, width: int | None = None, *,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Absolute ``cv2.remap`` coordinates ``float32 [H, W, 2]`` = ``(x + dx, y + dy)``.

    ``flow`` may be at a lower resolution than ``height`` x ``width`` (default: the flow's
    own size): it is resized and its vectors rescaled on the way, in one pass. ``out``: a
    ``float32 [H, W, 2]`` array to write the map into (reused, no new memory)."""
    fh, fw = flow.shape[:2]
    height, width = height or fh, width or fw
    grid = pixel_grid(height, width)
    if (fh, fw) == (height, width):
        return np.add(flow, grid, out=out, dtype=np.float32)
    # Rescale the vectors on the (smaller) flow, then resize: one full-size pass less.
    if fw * height == fh * width:  # same factor on both axes (the usual case)
        small = flow * np.float32(width / fw)
    else:
        small = flow * np.array([width / fw, height / fh], np.float32)
    m = cv2.resize(small, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    m += grid
    return m


def remap(image: np.ndarray, coords: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear ``cv2.remap`` with border replication at 2-channel ``coords``.

    3-channel ``uint8`` images go through 4 channels (OpenCV's vectorised path, ~2x faster).
    ``out``: an array of the result's shape and type to write it into (reused, no new memory)."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        warped = cv2.remap(cv2.cvtColor(image, cv2.COLOR_RGB2RGBA), coords, None, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB, dst=out)
    return cv2.remap(image, coords, None, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_REPLICATE)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp ``out[y, x] = image[y + dy, x + dx]`` (bilinear, border replicated)."""
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"warp: image {list(image.shape[:2])} and flow {list(flow.shape[:2])} differ in size")
    return remap(image, sampling_map(flow))


def consistency_error(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Forward-backward error ``|F_ab(x) + F_ba(x + F_ab(x))|`` in pixels, ``float32 [H, W]``."""
    back = warp(flow_ba, flow_ab)
    return np.sqrt(((flow_ab + back) ** 2).sum(axis=-1))


def warping_error(
    prev: np.ndarray,
    cur: np.ndarray,
    *,
    occlusion_px: float = 1.0,
    scale: float = 0.5,
    preset: str = "fast",
) -> float:
    """Mean absolute error (0..1) between ``cur`` and ``prev`` warped onto it, occlusions masked."""
    flow_cp = compute_flow(cur, prev, scale=scale, preset=preset)
    flow_pc = compute_flow(prev, cur, scale=scale, preset=preset)
    warped = warp(prev, flow_cp)
    err = cv2.absdiff(warped, cur).astype(np.float32)
    if err.ndim == 3:
        err = err.mean(axis=-1)
    valid = consistency_error(flow_cp, flow_pc) <= occlusion_px
    if not valid.any():
        return float(err.mean() / 255.0)
    return float(err[valid].mean() / 255.0)
