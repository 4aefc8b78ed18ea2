"""Input checks shared by every node: clear ``ValueError`` messages that name the
node input and the offending values, never a bare numpy/torch traceback."""

from __future__ import annotations

import math

import torch

from .errors import InputError
from .imaging import exact_uint8

__all__ = ["InputError", "check_budget", "check_images", "check_positive", "check_same_size", "frames_bytes"]


def check_images(
    images,
    input_name: str,
    *,
    node: str | None = None,
    min_frames: int = 1,
    channels: tuple[int, ...] = (3,),
    finite: bool = True,
) -> torch.Tensor:
    """Check a ComfyUI IMAGE batch: ``[B,H,W,C]`` float, ``B >= min_frames``, finite.

    ``finite=False`` skips the NaN/inf check (for callers that report such pixels
    themselves). Returns the tensor unchanged (as float32 if it was another float dtype)."""
    if not isinstance(images, torch.Tensor):
        raise InputError(input_name, f"expected an IMAGE tensor [B,H,W,C], got {type(images).__name__}", node)
    if images.ndim != 4:
        raise InputError(input_name, f"expected an IMAGE tensor [B,H,W,C], got shape {list(images.shape)}", node)
    b, h, w, c = images.shape
    if b < min_frames:
        what = "empty batch" if b == 0 else f"{b} frame(s), at least {min_frames} needed"
        raise InputError(input_name, f"{what} (shape {list(images.shape)})", node)
    if h == 0 or w == 0:
        raise InputError(input_name, f"zero-sized frames (shape {list(images.shape)})", node)
    if c not in channels:
        raise InputError(input_name, f"expected {' or '.join(map(str, channels))} channels, got {c} "
                                     f"(shape {list(images.shape)})", node)
    if not images.is_floating_point():
        raise InputError(input_name, f"expected float pixels in 0..1, got dtype {images.dtype}", node)
    # A sum is one fast vectorised pass (torch.isfinite over a 720p video batch takes ~40 ms
    # per frame on CPU); NaN/inf anywhere makes it non-finite, and only then (or on a
    # float overflow of huge finite values) are the pixels inspected one by one.
    # A batch made of 8-bit frames and not written to since (a loaded chunk) is finite.
    if finite and exact_uint8(images) is None and not bool(torch.isfinite(images.sum())) \
            and not bool((ok := torch.isfinite(images)).all()):
        bad = (~ok).reshape(b, -1).any(dim=1).nonzero().flatten().tolist()
        raise InputError(input_name, f"NaN or inf pixels in frame(s) {bad[:10]}{' ...' if len(bad) > 10 else ''}", node)
    return images.float() if images.dtype != torch.float32 else images


def check_positive(value: float, input_name: str, *, node: str | None = None, allow_zero: bool = False) -> float:
    """Check a finite number > 0 (or >= 0 with ``allow_zero``)."""
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(input_name, f"must be a finite number {bound}, got {value!r}", node)
    return v


def check_same_size(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str, *, node: str | None = None) -> None:
    """Frames of two IMAGE inputs must have the same height, width and channels."""
    if a.shape[1:] != b.shape[1:]:
        raise InputError(
            name_b,
            f"frame size {list(b.shape[1:3])} differs from {name_a} {list(a.shape[1:3])}; "
            "resize one of them explicitly (no silent resize)",
            node,
        )


GIB = 1024**3
MIB = 1024**2


def check_budget(need_bytes: int, budget_bytes: int | None, what: str, input_name: str, *,
                 node: str | None = None, budget_from: str = "memory_budget_mb") -> None:
    """Refuse, before anything is allocated, an output of ``need_bytes`` (``what``: its
    frames and size) over ``budget_bytes`` (None: no limit); the message names both sizes
    and where the budget came from (the node's ``memory_budget_mb``, or the free memory)."""
    if budget_bytes is not None and need_bytes > budget_bytes:
        raise InputError(input_name, (
            f"{what} need {need_bytes / GIB:.2f} GiB, over the {budget_bytes / GIB:.2f} GiB budget ({budget_from}); "
            "lower the size or the frame count, or raise memory_budget_mb"), node)


def frames_bytes(frames: int, height: int, width: int, channels: int = 3, element_size: int = 4) -> int:
    """Bytes of a ``[frames, height, width, channels]`` tensor (float32 unless told)."""
    return int(frames) * int(height) * int(width) * int(channels) * int(element_size)
