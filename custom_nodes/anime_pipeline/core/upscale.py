"""Upscale a whole clip with an image super-resolution model (Real-ESRGAN, Compact, ...).

Pure torch: the model is any callable ``[k, 3, h, w] -> [k, 3, h*s, w*s]`` (a spandrel
``ImageModelDescriptor`` inside ComfyUI) and the tiler is injected: inside ComfyUI it is
``comfy.utils.tiled_scale``, the same function core ``ImageUpscaleWithModel`` uses, so the
tiles, their overlap and the feathered blend are ComfyUI's own. What this module adds for video:

* **several frames per model call.** ``tiled_scale`` walks a batch frame by frame; here ``k``
  frames are folded into the channel axis (``[1, 3k, H, W]``) so every tile position is cut
  from ``k`` frames at once and the model sees a ``[k, 3, th, tw]`` batch. The blend weights
  are the same per channel, so each frame's result is what ``tiled_scale`` gives for it alone
  (up to the float rounding of batched convolutions).
* **memory-aware batch and tile.** ``k`` is sized from the free device memory with core's own
  estimate (``MEMORY_FACTOR`` bytes of working memory per input byte per unit of scale).
  An out-of-memory error halves ``k`` first (same result), then the tile (down to ``MIN_TILE``,
  as core does), and the smaller settings are kept for the rest of the clip.
* **an exact target size**: model scale, then a high-quality resize (Lanczos up, area down)
  with the aspect kept by cropping or padding, or stretched (:func:`imaging.fit_frames`).
* **refusals before any work**: an output larger than the memory budget, a device that
  cannot hold the model and one smallest tile, frames smaller than the model accepts.
* **NaN output** from the model is an error naming the frames, never a silent black frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import InputError
from .imaging import FITS, empty_images, fit_frames, target_size

log = logging.getLogger(__name__)

__all__ = ["FITS", "MEMORY_FACTOR", "MIN_TILE", "Plan", "UpscaleError", "plan_upscale", "upscale_frames"]

MIN_TILE = 128
MEMORY_FACTOR = 384.0  # core ImageUpscaleWithModel's working-memory estimate (nodes_upscale_model.py)
GIB = 1024**3


class UpscaleError(RuntimeError):
    """The model failed on valid input (NaN output, out of memory at the smallest tile)."""


@dataclass(frozen=True)
class Plan:
    """Sizes and settings of one upscale, fixed before any work starts."""

    frames: int
    size_in: tuple[int, int]  # (width, height)
    size_model: tuple[int, int]  # after the model's scale
    size_out: tuple[int, int]  # after the resize to the target
    scale: int
    tile: int
    overlap: int
    batch: int
    output_bytes: int

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "size_in": list(self.size_in),
            "size_model": list(self.size_model),
            "size_out": list(self.size_out),
            "scale": self.scale,
            "tile": self.tile,
            "overlap": self.overlap,
            "batch": self.batch,
            "output_gib": round(self.output_bytes / GIB, 3),
        }


def tile_bytes(tile_w: int, tile_h: int, scale: float, element_size: int) -> int:
    """Core's estimate of the working memory of one ``tile_w`` x ``tile_h`` model call."""
    return int(tile_w * tile_h * 3 * element_size * max(scale, 1.0) * MEMORY_FACTOR)


def plan_upscale(
    shape: tuple[int, ...],
    scale: int,
    *,
    target_width: int = 0,
    target_height: int = 0,
    tile: int = 512,
    overlap: int = 32,
    batch: int = 0,
    free_device_bytes: int,
    model_bytes: int,
    budget_bytes: int,
    element_size: int = 4,
    min_size: int = 0,
    node: str | None = None,
) -> Plan:
    """Check an upscale of ``shape`` (``[N, H, W, C]``) and size its batch, before any work.

    ``batch`` 0 sizes it from ``free_device_bytes``; ``budget_bytes`` bounds the finished
    float32 output plus one batch at the model's scale (what is held at once)."""
    n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
    if min(h, w) < min_size:
        raise InputError("images", f"frames are {w}x{h}, smaller than the {min_size} px the model accepts", node)
    if not 0 <= overlap < tile // 2:
        raise InputError("overlap", f"must be >= 0 and less than half the tile ({tile} px), got {overlap}", node)
    mw, mh = w * scale, h * scale
    tw, th = target_size(mw, mh, target_width, target_height)
    smallest = tile_bytes(min(w, MIN_TILE), min(h, MIN_TILE), scale, element_size)
    if free_device_bytes < model_bytes + smallest:
        raise InputError("images", (
            f"the device has {free_device_bytes / GIB:.2f} GiB free, but the model ({model_bytes / GIB:.2f} GiB) and "
            f"one {MIN_TILE} px tile at x{scale} ({smallest / GIB:.2f} GiB) need "
            f"{(model_bytes + smallest) / GIB:.2f} GiB; free memory or use a smaller model"), node)
    per_frame = tile_bytes(min(w, tile), min(h, tile), scale, element_size)
    if batch <= 0:
        batch = max(1, min(n, (free_device_bytes - model_bytes) // max(per_frame, 1)))
    batch = max(1, min(int(batch), n))
    frame_out = th * tw * 3 * 4
    held = n * frame_out + batch * mh * mw * 3 * 4
    if held > budget_bytes:
        raise InputError("images", (
            f"{n} frames of {tw}x{th} (via {mw}x{mh} at x{scale}) need {held / GIB:.2f} GiB "
            f"({n} x {frame_out / 2**20:.1f} MiB output + one batch of {batch} at the model's scale), more than the "
            f"{budget_bytes / GIB:.2f} GiB budget; upscale fewer frames at a time or lower the target size"), node)
    return Plan(n, (w, h), (mw, mh), (tw, th), scale, int(tile), int(overlap), batch, held)


Tiler = Callable[..., torch.Tensor]  # comfy.utils.tiled_scale's signature


def _tiles_per_frame(w: int, h: int, tile: int, overlap: int) -> int:
    def count(size: int) -> int:
        return 1 if size <= tile else len(range(0, size - overlap, tile - overlap))

    return count(w) * count(h)


def _run_batch(chunk: torch.Tensor, model: Callable, scale: int, tile: int, overlap: int, tiler: Tiler,
               device, dtype, tick: Callable[[int], None]) -> torch.Tensor:
    """Upscale ``chunk`` ``[k, H, W, 3]`` (any device) -> ``[k, H*s, W*s, 3]`` float32 on the CPU."""
    k, h, w, c = chunk.shape
    folded = chunk.to(device=device, dtype=dtype).movedim(-1, 1).reshape(1, k * c, h, w)

    def function(part: torch.Tensor) -> torch.Tensor:
        ph, pw = part.shape[-2:]
        res = model(part.reshape(k, c, ph, pw))
        return res.reshape(1, k * c, res.shape[-2], res.shape[-1]).float()

    class _Ticks:  # tiled_scale's pbar: one update per tile position (k frames each)
        @staticmethod
        def update(_n: int) -> None:
            tick(k)

    out = tiler(folded, function, tile_x=tile, tile_y=tile, overlap=overlap, upscale_amount=scale,
                out_channels=k * c, output_device="cpu", pbar=_Ticks())
    return out.reshape(k, c, h * scale, w * scale).movedim(1, -1)


def upscale_frames(
    frames: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor],
    plan: Plan,
    *,
    tiler: Tiler,
    oom_errors: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,),
    device="cpu",
    dtype: torch.dtype = torch.float32,
    fit: str = "crop",
    on_oom: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    node: str | None = None,
) -> tuple[torch.Tensor, dict]:
    """Upscale ``frames`` ``[N, H, W, 3]`` as ``plan`` says; returns the output and a report
    (the settings finally used and how many out-of-memory retries it took)."""
    n, h, w, _ = frames.shape
    tw, th = plan.size_out
    out = empty_images((n, th, tw, 3))
    batch, tile, retries = plan.batch, plan.tile, 0
    total = n * _tiles_per_frame(w, h, tile, plan.overlap)
    state = {"done": 0}

    def tick(k: int) -> None:
        state["done"] += k
        if progress is not None:
            progress(min(state["done"], total), total)

    start = 0
    while start < n:
        end = min(n, start + batch)
        mark = state["done"]
        try:
            up = _run_batch(frames[start:end], model, plan.scale, tile, plan.overlap, tiler, device, dtype, tick)
        except oom_errors as err:
            state["done"] = mark
            if on_oom is not None:
                on_oom()
            if batch > 1:
                batch //= 2
            elif tile // 2 >= MIN_TILE:
                tile //= 2
                total = state["done"] + (n - start) * _tiles_per_frame(w, h, tile, plan.overlap)
            else:
                raise UpscaleError(f"{node or 'upscale'}: out of device memory even with one frame per batch and "
                                   f"{tile} px tiles ({w}x{h} at x{plan.scale}): {err}") from None
            retries += 1
            log.warning("%s: out of memory; retrying with %d frame(s) per batch and %d px tiles", node or "upscale",
                        batch, tile)
            continue
        bad = (~torch.isfinite(up)).reshape(up.shape[0], -1).any(dim=1).nonzero().flatten()
        if len(bad):
            frames_bad = [start + int(i) for i in bad[:10]]
            raise UpscaleError(f"{node or 'upscale'}: the upscale model produced NaN or inf pixels for frame(s) "
                               f"{frames_bad}; the model file may be corrupt or unsuited to {dtype} (try fp32)")
        out[start:end] = fit_frames(up.clamp(0.0, 1.0), tw, th, fit)
        start = end
    return out, {**plan.summary(), "batch_used": batch, "tile_used": tile, "oom_retries": retries,
                 "fit": fit, "dtype": str(dtype).replace("torch.", "")}

