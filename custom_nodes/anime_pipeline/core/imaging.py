"""Small image conversions shared by the pure modules (IMAGE tensors <-> numpy)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import cv2
import numpy as np
import torch

# ITU-R BT.601 luma weights, as OpenCV's RGB2GRAY.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
FITS = ("crop", "pad", "stretch")


def empty_images(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised CPU float32 tensor of ``shape`` whose memory NumPy allocated.

    For a large batch of frames the difference is the page faults: NumPy advises the kernel
    to back arrays of 4 MB and more with transparent huge pages, ``torch.empty`` does not, so
    first writing a ``torch.empty`` batch faults in every 4 KB page (about 2,700 faults per
    1280x720 frame, 10 of the 12 ms it took to fill one with converted pixels on a 2-core
    VM; 17 faults and 3 ms from NumPy's memory)."""
    return torch.from_numpy(np.empty(shape, dtype=np.float32))


# IMAGE tensors made from 8-bit frames (a chunk loaded by AP_LoadChunk): id -> (weak reference,
# the tensor's version counter then, the frames). See remember_uint8 / exact_uint8.
_EXACT: dict[int, tuple[weakref.ref, int, Sequence[np.ndarray]]] = {}


def remember_uint8(images: torch.Tensor, frames: Sequence[np.ndarray]) -> None:
    """Record that ``images`` is exactly ``frames`` (``uint8 [H,W,3]`` each) divided by 255, so
    a node that needs 8-bit frames back (the optical-flow interpolator) takes these instead
    of converting every frame again (and a finiteness check can be skipped). Forgotten when
    the tensor is freed, and once anything writes into it where torch counts writes (not in
    ``inference_mode``, where ComfyUI runs nodes: there it rests on ComfyUI's own rule that a
    node never modifies its inputs, which its output cache depends on too)."""
    key = id(images)
    _EXACT[key] = (weakref.ref(images, lambda _ref: _EXACT.pop(key, None)), _writes(images), frames)


def exact_uint8(images: torch.Tensor) -> Sequence[np.ndarray] | None:
    """The 8-bit frames ``images`` was made of (:func:`remember_uint8`), or None when unknown or
    the tensor has been written to since."""
    entry = _EXACT.get(id(images))
    if entry is None or entry[0]() is not images or entry[1] != _writes(images):
        return None
    return entry[2]


def take_uint8(images: torch.Tensor) -> Sequence[np.ndarray] | None:
    """:func:`exact_uint8`, and the frames no longer kept for ``images`` (its one reader takes
    them: kept, they would stay as long as ComfyUI caches the tensor, into the next chunk's load)."""
    frames = exact_uint8(images)
    entry = _EXACT.get(id(images))
    if entry is not None and entry[0]() is images:
        del _EXACT[id(images)]
    return frames


def _writes(images: torch.Tensor) -> int:
    """torch's count of in-place writes to ``images`` (-1 for an inference tensor, which has none)."""
    return -1 if images.is_inference() else images._version


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """IMAGE ``[B,H,W,C]`` float 0..1 -> ``uint8`` numpy array of the same shape."""
    return (frames.detach().cpu().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


def from_uint8(frames: np.ndarray) -> torch.Tensor:
    """``uint8`` ``[B,H,W,C]`` (or ``[H,W,C]``) -> IMAGE float32 tensor ``[B,H,W,C]``."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)


def luma(frames: torch.Tensor) -> torch.Tensor:
    """Luma ``[B,H,W]`` (0..1) of an RGB IMAGE batch."""
    w = torch.tensor(LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device)
    return (frames[..., :3] * w).sum(dim=-1)


def resize(frames: torch.Tensor, width: int, height: int, method: str = "lanczos") -> torch.Tensor:
    """Resize an IMAGE batch to ``width`` x ``height``.

    ``lanczos`` uses OpenCV's Lanczos-4 (8x8 kernel) on float32 and clamps the ringing back
    into 0..1; ``area`` is best for strong downscales; ``bilinear`` / ``bicubic`` as named."""
    flags = {
        "lanczos": cv2.INTER_LANCZOS4,
        "area": cv2.INTER_AREA,
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
    }
    if method not in flags:
        raise ValueError(f"resize method must be one of {sorted(flags)}, got {method!r}")
    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    src = frames.detach().cpu().float().numpy()
    out = np.empty((src.shape[0], height, width, src.shape[3]), dtype=np.float32)
    for i, frame in enumerate(src):
        res = cv2.resize(frame, (width, height), interpolation=flags[method])
        out[i] = res.reshape(height, width, -1)
    np.clip(out, 0.0, 1.0, out=out)
    return torch.from_numpy(out)


def fit_frames(frames: torch.Tensor, width: int, height: int, fit: str) -> torch.Tensor:
    """Resize ``[B,H,W,C]`` to ``width`` x ``height``: ``crop`` (cover, centre crop),
    ``pad`` (contain, centred on black) or ``stretch``. Lanczos when enlarging, area
    averaging when reducing (Lanczos-4 aliases on strong reductions)."""
    _, h, w, c = frames.shape
    if (w, h) == (width, height):
        return frames
    if fit == "stretch":
        return resize(frames, width, height, "lanczos" if width * height >= w * h else "area")
    s = max(width / w, height / h) if fit == "crop" else min(width / w, height / h)
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    rw, rh = (max(rw, width), max(rh, height)) if fit == "crop" else (min(rw, width), min(rh, height))
    scaled = resize(frames, rw, rh, "lanczos" if s >= 1 else "area")
    if fit == "crop":
        x, y = (rw - width) // 2, (rh - height) // 2
        return scaled[:, y:y + height, x:x + width].contiguous()
    out = torch.zeros((frames.shape[0], height, width, c), dtype=scaled.dtype)
    x, y = (width - rw) // 2, (height - rh) // 2
    out[:, y:y + rh, x:x + rw] = scaled
    return out


def target_size(width: int, height: int, target_width: int, target_height: int) -> tuple[int, int]:
    """``(0, 0)``: the given size; one of them 0: follow the other keeping the aspect."""
    if target_width and target_height:
        return target_width, target_height
    if target_width:
        return target_width, max(1, round(height * target_width / width))
    if target_height:
        return max(1, round(width * target_height / height)), target_height
    return width, height


def ssim(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-frame SSIM of the luma of two IMAGE batches of the same shape, as ``float64 [B]``.

    Wang et al. (2004) constants: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03,
    data range 1; the SSIM map is averaged over the whole frame (borders reflected)."""
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ: {list(a.shape)} vs {list(b.shape)}")
    c1, c2 = 0.01**2, 0.03**2
    ya = luma(a.detach().cpu().double()).numpy()
    yb = luma(b.detach().cpu().double()).numpy()

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    out = np.empty(len(ya))
    for i, (x, y) in enumerate(zip(ya, yb, strict=False)):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        num = (2 * mx * my + c1) * (2 * cxy + c2)
        den = (mx * mx + my * my + c1) * (vx + vy + c2)
        out[i] = float((num / den).mean())
    return out
