"""Lossless video chunks: RGB frames in FFV1 / Matroska, 8 or 16 bits per channel.

ComfyUI's core ``LoadVideo`` decodes to 8-bit RGB and ``SaveVideo`` writes H.264 4:2:0,
so a chunk that goes through a server and back with them loses detail (and 10-bit
sources their extra bits). These chunks keep every value: 8-bit frames are stored as
``bgr0`` (a channel shuffle of RGB, exact), 16-bit frames as ``gbrp16le``; both are
FFV1 (lossless, intra-only), so the frames read back equal the frames written, bit for
bit. An IMAGE tensor (float 0..1) converts to 8 or 16 bits by rounding ``x * (2^b - 1)``;
the round trip ``u -> u / (2^b - 1) -> u`` is exact in float32 for both depths.

The frame rate is stored as an exact fraction (``24000/1001`` stays that). A chunk may carry
text tags (Matroska tags, e.g. the retime's report as ``AP_REPORT``): they travel with the
file through any backend (a RunPod Serverless worker returns files, not node texts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

DEPTHS = {8: (np.uint8, "rgb24", "bgr0"), 16: (np.uint16, "rgb48le", "gbrp16le")}
CODEC = "ffv1"


def _depth(bits: int) -> tuple:
    if bits not in DEPTHS:
        raise ValueError(f"bit depth must be one of {sorted(DEPTHS)}, got {bits!r}")
    return DEPTHS[bits]


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``uint8``/``uint16 [N,H,W,3]`` -> IMAGE float32 0..1."""
    scale = float(np.iinfo(frames.dtype).max)
    return torch.from_numpy(np.ascontiguousarray(frames).astype(np.float32) / np.float32(scale))


def from_tensor(images: torch.Tensor, bits: int) -> np.ndarray:
    """IMAGE float 0..1 -> ``uint8``/``uint16 [N,H,W,3]`` (rounded, clipped)."""
    dtype = _depth(bits)[0]
    scale = float(np.iinfo(dtype).max)
    x = images.detach().cpu().float().numpy()
    return np.clip(np.rint(x * np.float32(scale)), 0, scale).astype(dtype)


def write_chunk(path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float, bits: int = 8,
                tags: dict[str, str] | None = None) -> int:
    """Write ``uint8`` (bits 8) or ``uint16`` (bits 16) ``[H,W,3]`` RGB frames; returns the count.
    The file is written whole or not at all (``path`` appears when complete). ``tags``: text
    tags of the file (:func:`chunk_tags` reads them back)."""
    dtype, src_fmt, pix_fmt = _depth(bits)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("a chunk needs at least one frame")
    try:
        with av.open(str(tmp), "w", format="matroska") as out:
            out.metadata.update(tags or {})
            stream = out.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1 << 20))
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = pix_fmt
            for frame in itertools.chain([first], frames):
                if frame.dtype != dtype or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"frame {count}: expected {np.dtype(dtype).name} [H,W,3], "
                                     f"got {frame.dtype} {list(frame.shape)}")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=src_fmt)
                vf = vf.reformat(format=pix_fmt) if pix_fmt == "bgr0" else vf
                vf.pts = count
                out.mux(stream.encode(vf))
                count += 1
            out.mux(stream.encode(None))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def iter_chunk(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a chunk, in order, as ``uint8``/``uint16 [H,W,3]`` RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        bits = 16 if stream.codec_context.pix_fmt in ("gbrp16le", "rgb48le") else 8
        fmt = _depth(bits)[1]
        for frame in container.decode(stream):
            yield frame.to_ndarray(format=fmt)


def chunk_tags(path: str | Path) -> dict[str, str]:
    """The text tags a chunk was written with (see :func:`write_chunk`), without the muxer's own."""
    with av.open(str(path)) as container:
        return {k: v for k, v in container.metadata.items() if k.upper() != "ENCODER"}


def chunk_info(path: str | Path) -> tuple[Fraction, int]:
    """(frame rate, bits per channel) of a chunk file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name != CODEC:
            raise ValueError(f"{Path(path).name} is {stream.codec_context.name}, not an FFV1 chunk")
        bits = 16 if stream.codec_context.pix_fmt in ("gbrp16le", "rgb48le") else 8
        return Fraction(stream.average_rate or stream.guessed_rate or 0), bits


def read_chunk(path: str | Path) -> tuple[np.ndarray, Fraction, int]:
    """All frames of a chunk ``[N,H,W,3]``, its frame rate and bits per channel."""
    fps, bits = chunk_info(path)
    frames = list(iter_chunk(path))
    if not frames:
        raise ValueError(f"{Path(path).name} has no frames")
    return np.stack(frames), fps, bits
