"""Lossless video chunks: RGB frames, 8 or 16 bits per channel, in NUT files.

ComfyUI's core ``LoadVideo`` decodes to 8-bit RGB and ``SaveVideo`` writes H.264 4:2:0,
so a chunk that goes through a server and back with them loses detail (and 10-bit
sources their extra bits). These chunks keep every value: 8-bit frames are Ut Video
``gbrp`` (a planar shuffle of RGB, lossless; about twice as fast to encode and five
times as fast to decode as FFV1, files ~1.7x larger), 16-bit frames FFV1 ``gbrp16le``;
the frames read back equal the frames written, bit for bit. ``raw=True`` stores the RGB
bytes as they are (``rawvideo`` ``rgb24`` / ``rgb48le``: ~4.5x larger, ~5x cheaper to write and
~3x cheaper to read than Ut Video; for a server on the same machine, where bytes cost nothing to
move and coding costs CPU the server needs). Chunks written before (FFV1 ``bgr0`` in Matroska)
still read. An IMAGE tensor (float 0..1) converts to 8 or 16 bits
by rounding ``x * (2^b - 1)``; the round trip ``u -> u / (2^b - 1) -> u`` is exact in
float32 for both depths. Conversions run a frame at a time, so no second copy of a
whole batch is ever made.

The frame rate is stored as an exact fraction (``24000/1001`` stays that). A chunk may carry
text tags (container metadata, kept by NUT and Matroska; e.g. the retime's report as
``AP_REPORT``): they travel with the file through any backend (a RunPod Serverless worker
returns files, not node texts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from .imaging import empty_images, remember_uint8

# bits -> (numpy dtype, RGB format, codec, stored pixel format)
DEPTHS = {8: (np.uint8, "rgb24", "utvideo", "gbrp"), 16: (np.uint16, "rgb48le", "ffv1", "gbrp16le")}
CODECS = ("utvideo", "ffv1", "rawvideo")
SUFFIX = ".nut"  # FFmpeg's own container: holds both codecs and an exact frame rate
_DEEP = ("gbrp16le", "rgb48le", "gbrp16be")


def _depth(bits: int) -> tuple:
    if bits not in DEPTHS:
        raise ValueError(f"bit depth must be one of {sorted(DEPTHS)}, got {bits!r}")
    return DEPTHS[bits]


def to_tensor(frames: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """``uint8``/``uint16 [N,H,W,3]`` (or a list of ``[H,W,3]``) -> IMAGE float32 0..1, converted
    frame by frame into one preallocated tensor (``u / (2^b - 1)``, correctly rounded; one
    thread: the pass is memory-bound, torch's two threads took ~1.6x its CPU for it)."""
    first = frames[0]
    out = empty_images((len(frames), *first.shape))
    scale = np.float32(np.iinfo(first.dtype).max)
    view = out.numpy()
    for i, frame in enumerate(frames):
        np.divide(frame, scale, out=view[i], dtype=np.float32)
    return out


def frame_from_tensor(image: torch.Tensor, bits: int) -> np.ndarray:
    """One IMAGE frame ``[H,W,3]`` float 0..1 -> ``uint8``/``uint16`` (rounded half to even, clipped)."""
    dtype = _depth(bits)[0]
    x = np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy())
    if bits == 8:  # one saturating, rounding pass
        return cv2.addWeighted(x, 255.0, x, 0.0, 0.0, dtype=cv2.CV_8U)
    scale = np.float32(np.iinfo(dtype).max)
    return np.clip(np.rint(x * scale), 0, scale).astype(dtype)


def iter_from_tensor(images: torch.Tensor, bits: int) -> Iterator[np.ndarray]:
    """IMAGE ``[N,H,W,3]`` -> ``uint8``/``uint16`` frames, one at a time."""
    for image in images:
        yield frame_from_tensor(image, bits)


def from_tensor(images: torch.Tensor, bits: int) -> np.ndarray:
    """IMAGE float 0..1 -> ``uint8``/``uint16 [N,H,W,3]`` (rounded, clipped)."""
    return np.stack(list(iter_from_tensor(images, bits)))


def write_chunk(path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float, bits: int = 8,
                tags: dict[str, str] | None = None, *, raw: bool = False) -> int:
    """Write ``uint8`` (bits 8) or ``uint16`` (bits 16) ``[H,W,3]`` RGB frames; returns the count.
    The file is written whole or not at all (``path`` appears when complete). ``tags``: text
    tags of the file (:func:`chunk_tags` reads them back); ``raw``: uncompressed (module doc)."""
    dtype, src_fmt, codec, pix_fmt = _depth(bits)
    if raw:
        codec, pix_fmt = "rawvideo", src_fmt
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("a chunk needs at least one frame")
    try:
        with av.open(str(tmp), "w", format="nut") as out:
            out.metadata.update(tags or {})
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1 << 20))
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = pix_fmt
            for frame in itertools.chain([first], frames):
                if frame.dtype != dtype or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"frame {count}: expected {np.dtype(dtype).name} [H,W,3], "
                                     f"got {frame.dtype} {list(frame.shape)}")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=src_fmt)
                if pix_fmt != src_fmt:
                    vf = vf.reformat(format=pix_fmt)
                vf.pts = count
                out.mux(stream.encode(vf))
                count += 1
            out.mux(stream.encode(None))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _open_video(path: str | Path):
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    bits = 16 if stream.codec_context.pix_fmt in _DEEP else 8
    return container, stream, bits


def iter_chunk(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a chunk, in order, as ``uint8``/``uint16 [H,W,3]`` RGB. A raw chunk's frames
    are read-only views of the decoded frames' own memory (no copy: each fresh 1280x720 array
    cost ~450 page faults, more than reading the frame)."""
    container, stream, bits = _open_video(path)
    with container:
        fmt = _depth(bits)[1]
        for frame in container.decode(stream):
            yield _view(frame, fmt) if frame.format.name == fmt else frame.to_ndarray(format=fmt)


def _view(frame: av.VideoFrame, fmt: str) -> np.ndarray:
    """The packed RGB frame ``frame`` (in ``fmt``) as a read-only array over its plane (rows
    padded to the plane's line size are sliced back to the width)."""
    dtype = np.dtype(np.uint8 if fmt == "rgb24" else np.uint16)
    rows = np.frombuffer(memoryview(frame.planes[0]), dtype).reshape(frame.height, -1)  # keeps the frame alive
    view = rows[:, :frame.width * 3].reshape(frame.height, frame.width, 3)
    view.flags.writeable = False
    return view


def chunk_tags(path: str | Path) -> dict[str, str]:
    """The text tags a chunk was written with (see :func:`write_chunk`), without the muxer's own."""
    with av.open(str(path)) as container:
        return {k: v for k, v in container.metadata.items() if k.upper() != "ENCODER"}


def chunk_info(path: str | Path) -> tuple[Fraction, int]:
    """(frame rate, bits per channel) of a chunk file."""
    container, stream, bits = _open_video(path)
    with container:
        if stream.codec_context.name not in CODECS:
            raise ValueError(f"{Path(path).name} is {stream.codec_context.name}, not a lossless chunk "
                             f"({' or '.join(CODECS)})")
        return Fraction(stream.average_rate or stream.guessed_rate or 0), bits


def read_chunk(path: str | Path) -> tuple[np.ndarray, Fraction, int]:
    """All frames of a chunk ``[N,H,W,3]``, its frame rate and bits per channel."""
    fps, bits = chunk_info(path)
    frames = list(iter_chunk(path))
    if not frames:
        raise ValueError(f"{Path(path).name} has no frames")
    return np.stack(frames), fps, bits


def load_tensor(path: str | Path) -> tuple[torch.Tensor, Fraction, int]:
    """A chunk straight to an IMAGE tensor (the 8/16-bit frames are held only until converted)."""
    fps, bits = chunk_info(path)
    frames = list(iter_chunk(path))
    if not frames:
        raise ValueError(f"{Path(path).name} has no frames")
    images = to_tensor(frames)
    if bits == 8:  # kept with the tensor: the interpolator works on these 8-bit frames
        remember_uint8(images, frames)
    return images, fps, bits
