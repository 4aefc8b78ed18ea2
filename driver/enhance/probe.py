"""What an input video is (PyAV, no hand-written container code) and its frames as exact RGB.

:func:`probe` reads the streams and the video's properties; :class:`FrameSource` decodes
the video to RGB (8 bits, or 16 bits for deeper sources) with the tagged colour matrix and
range (BT.709 for HD and BT.601 for SD when untagged), the rotation flag applied, and a
variable frame rate turned constant at the stream's average rate (each slot shows the
last frame that started by then). The same conversion runs for the whole-clip analysis
(downscaled) and for the chunks, so both see the same frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from .errors import InputUnreadable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: AVColorSpace values -> the matrix swscale converts with
MATRICES = {1: Colorspace.ITU709, 5: Colorspace.ITU601, 6: Colorspace.ITU601, 7: Colorspace.SMPTE240M,
            4: Colorspace.FCC, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
HD_HEIGHT = 720


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # "audio" | "subtitle" | "data" | "attachment"
    codec: str
    language: str | None = None


@dataclass(frozen=True)
class VideoProbe:
    path: str
    container: str
    codec: str
    width: int  # after rotation
    height: int
    fps: Fraction  # the constant rate frames are delivered at
    variable_fps: bool
    duration: float  # seconds, of the video stream
    start_time: float  # seconds: the first frame's timestamp
    pix_fmt: str
    bits: int
    colorspace: int  # AVColorSpace tag (2 = unspecified)
    color_range: int  # AVColorRange tag (0 = unspecified, 1 = limited, 2 = full)
    color_primaries: int
    color_trc: int
    rotation: int  # degrees counterclockwise, from the display matrix
    others: tuple[StreamInfo, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_rgb(self) -> bool:
        return self.pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr"))

    @property
    def matrix(self) -> Colorspace:
        """The matrix RGB conversions use: the tagged one, else BT.709 for HD, BT.601 for SD."""
        return MATRICES.get(self.colorspace) or (Colorspace.ITU709 if self.height >= HD_HEIGHT else Colorspace.ITU601)

    @property
    def full_range(self) -> bool:
        return self.color_range == 2 or self.pix_fmt.startswith("yuvj")

    @property
    def rgb_bits(self) -> int:
        """Bits per channel of the RGB frames and chunks: 8, or 16 for deeper sources."""
        return 8 if self.bits <= 8 else 16

    def summary(self) -> dict:
        return {"codec": self.codec, "size": [self.width, self.height], "fps": str(self.fps),
                "variable_fps": self.variable_fps, "duration_s": round(self.duration, 4), "pix_fmt": self.pix_fmt,
                "bits": self.bits, "colorspace": self.colorspace, "color_range": self.color_range,
                "rotation": self.rotation, "streams": [s.__dict__ for s in self.others], "notes": list(self.notes)}


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputUnreadable(f"{path} is not a readable video file: {exc}") from None


def _first_frame(container, stream):
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise InputUnreadable(f"{container.name}: the video cannot be decoded: {exc}") from None
    raise InputUnreadable(f"{container.name}: the video stream has no decodable frame")


def _timing(container, stream) -> tuple[Fraction, bool, float, float]:
    """(constant rate, variable?, duration s, start s) from the packets' timestamps."""
    tb = stream.time_base
    stamps = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
    if not stamps:
        raise InputUnreadable(f"{container.name}: the video stream has no packets")
    deltas = set(np.diff(stamps).tolist()) if len(stamps) > 1 else set()
    variable = len(deltas) > 1 and (max(deltas) - min(deltas)) * tb > Fraction(1, 1000)
    rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
    if variable and len(stamps) > 1:
        rate = Fraction(len(stamps) - 1, 1) / ((stamps[-1] - stamps[0]) * tb)
        rate = rate.limit_denominator(1001)
    if rate <= 0:
        raise InputUnreadable(f"{container.name}: the video stream has no frame rate")
    start = float(stamps[0] * tb)
    duration = len(stamps) / rate if not variable else (stamps[-1] - stamps[0]) * tb + 1 / rate
    return rate, variable, float(duration), start


def probe(path: str | Path) -> VideoProbe:
    """Streams and properties of a video file; :class:`InputUnreadable` when it has none."""
    path = Path(path)
    if not path.is_file():
        raise InputUnreadable(f"{path} does not exist or is not a file")
    with _open(path) as container:
        if not container.streams.video:
            raise InputUnreadable(f"{path} has no video stream ({len(container.streams)} other stream(s))")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise InputUnreadable(f"{path}: unsupported video codec")
        frame = _first_frame(container, stream)
        container.seek(0)
        rate, variable, duration, start = _timing(container, stream)
        others = tuple(StreamInfo(s.index, s.type, s.codec_context.name if s.codec_context else "?",
                                  s.metadata.get("language")) for s in container.streams if s is not stream)
    fmt = av.VideoFormat(frame.format.name)
    rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
    w, h = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
    notes = []
    if variable:
        notes.append(f"variable frame rate: converted to constant {float(rate):.3f} fps (the stream's average)")
    if rotation:
        notes.append(f"rotation flag {rotation} deg applied: the output is upright and untagged")
    return VideoProbe(str(path), container.format.name, stream.codec_context.name, w, h, rate, variable, duration,
                      start, frame.format.name, max(c.bits for c in fmt.components), int(frame.colorspace or 2),
                      int(frame.color_range or 0), int(frame.color_primaries or 2), int(frame.color_trc or 2),
                      rotation, others, tuple(notes))


@dataclass
class Repair:
    """A frame that could not be decoded and was replaced by the last good one."""

    time_s: float
    message: str


def rgb_array(info: VideoProbe, frame: av.VideoFrame, reformatter: VideoReformatter,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """A decoded frame of the probed video as RGB ``[H,W,3]`` (8 bits, or 16 for deeper sources
    unless ``size`` (width, height) downscales it, by area, for analysis): the tagged matrix
    and range, the rotation flag applied."""
    w, h = size if size else (None, None)
    if w is not None and info.rotation in (90, 270):
        w, h = h, w
    out = reformatter.reformat(
        frame, width=w, height=h, format="rgb24" if size is not None or info.rgb_bits == 8 else "rgb48le",
        src_colorspace=None if info.is_rgb else info.matrix,
        src_color_range=ColorRange.JPEG if info.full_range else ColorRange.MPEG,
        interpolation=Interpolation.AREA if size else None)
    arr = out.to_ndarray()
    return np.ascontiguousarray(np.rot90(arr, info.rotation // 90)) if info.rotation else arr


class FrameSource:
    """Decodes the probed video to RGB ``[H,W,3]`` arrays (:func:`rgb_array`), one constant-rate
    slot at a time.

    ``size`` (width, height) downscales (area) for analysis; ``skip_errors`` repeats the
    last good frame where a packet cannot be decoded and records a :class:`Repair`;
    otherwise a bad packet raises :class:`InputUnreadable` with its timestamp. :meth:`decoded`
    gives the same slots as the decoded ``av.VideoFrame`` s themselves, unconverted (the final
    encode takes a source frame it copies as it is)."""

    def __init__(self, info: VideoProbe, *, size: tuple[int, int] | None = None, skip_errors: bool = False,
                 start: int = 0, stop: int | None = None):
        self.info, self.size, self.skip_errors = info, size, skip_errors
        self.start, self.stop = start, stop
        self.repairs: list[Repair] = []
        self._reformatter = VideoReformatter()

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return rgb_array(self.info, frame, self._reformatter, self.size)

    def _decoded(self, container, stream, convert: Callable[[av.VideoFrame], T]) -> Iterator[tuple[float, T | None]]:
        """(timestamp s, frame or None for a bad packet) in decode order."""
        tb = stream.time_base
        for packet in container.demux(stream):
            t = float(packet.pts * tb) if packet.pts is not None else None
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                if t is None:
                    continue
                if not self.skip_errors:
                    raise InputUnreadable(f"{self.info.path}: bad video packet at {t:.3f} s ({exc}); "
                                          "rerun with --skip-errors to repeat the last good frame there") from None
                self.repairs.append(Repair(round(t - self.info.start_time, 4), str(exc)))
                yield t, None
                continue
            for frame in frames:
                yield float(frame.time if frame.time is not None else t or 0.0), convert(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames ``start .. stop - 1`` of the constant-rate sequence."""
        return self._slots(self._rgb)

    def decoded(self) -> Iterator[av.VideoFrame]:
        """The same frames as decoded (not converted, not rotated)."""
        return self._slots(lambda frame: frame)

    def _slots(self, convert: Callable[[av.VideoFrame], T]) -> Iterator[T]:
        info = self.info
        with _open(Path(info.path)) as container:
            stream = container.streams.video[0]
            # slice threads only: frame threads report a bad packet a few packets late (a wrong time)
            stream.thread_type = "SLICE"
            slot, last = 0, None
            for t, frame in self._decoded(container, stream, convert):
                frame = last if frame is None else frame
                if frame is None:
                    continue
                # a CFR stream: one slot per frame; VFR: slots before this frame's time show the last one
                reach = round((t - info.start_time) * info.fps) if info.variable_fps else slot
                while slot <= reach:
                    if self.stop is not None and slot >= self.stop:
                        return
                    if slot >= self.start:
                        yield frame if slot == reach or last is None else last  # type: ignore[misc]
                    slot += 1
                last = frame
            end = round(info.duration * info.fps) if info.variable_fps else slot
            for tail in range(slot, end if self.stop is None else min(end, self.stop)):  # VFR: hold to the end
                if tail >= self.start and last is not None:
                    yield last
