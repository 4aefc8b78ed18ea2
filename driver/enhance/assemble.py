"""The final encode: rendered chunks concatenated at a constant frame rate, every audio and
subtitle stream of the input copied with timestamps aligned to the video, written to a
temporary file beside the target and moved into place when complete.

The only lossy step of the command. RGB -> YUV uses the input's tagged matrix and range
(BT.709 for HD, BT.601 for SD when untagged) and the output carries the input's colour
tags; a source deeper than 8 bits is encoded at 10 bits. A copied source frame already in
the output's pixel format is encoded as decoded (no RGB round trip). Frames smaller than the
output size (``--scale`` without an upscale model) are resized in the same conversion
(swscale lanczos).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

from driver.errors import DiskFull

from .probe import VideoProbe, rgb_array

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Encoding:
    codec: str = "libx264"  # or libx265
    crf: int = 18
    preset: str = "medium"


@dataclass(frozen=True)
class Span:
    """The part of the input the output covers: its first frame (constant-rate index) and
    its duration in seconds."""

    first_frame: int
    seconds: float


def pixel_format(info: VideoProbe, width: int, height: int) -> str:
    """4:2:0 (10-bit for deeper sources); 4:4:4 when the size is odd (4:2:0 needs even sizes)."""
    chroma = "yuv444p" if width % 2 or height % 2 else "yuv420p"
    return chroma + ("10le" if info.bits > 8 else "")


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def _video_stream(out, info: VideoProbe, fps: Fraction, size: tuple[int, int], enc: Encoding):
    stream = out.add_stream(enc.codec, rate=fps, options={"crf": str(enc.crf), "preset": enc.preset})
    stream.width, stream.height = size
    stream.pix_fmt = pixel_format(info, *size)
    stream.time_base = 1 / fps
    cc = stream.codec_context
    cc.thread_type = "AUTO"  # frame threads, as ffmpeg's command line (PyAV's default, slices, is ~10% slower)
    cc.color_range = 2 if info.full_range else 1
    if info.colorspace != 2:
        cc.colorspace, cc.color_primaries, cc.color_trc = info.colorspace, info.color_primaries, info.color_trc
    return stream


TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"}


class _Convert:
    """A text subtitle stream re-encoded as ``mov_text`` (MP4/MOV hold no other text subtitles)."""

    def __init__(self, src_stream, out_stream):
        self.src, self.out = src_stream, out_stream

        decoder = src_stream.codec_context
        if not decoder.is_open:
            decoder.open()
        # the decoder's ASS header, as ffmpeg passes it on (the muxer opens the encoder with its header)
        out_stream.codec_context.subtitle_header = decoder.subtitle_header

    def packet(self, packet: av.Packet) -> av.Packet | None:
        subs = self.src.codec_context.decode2(packet)
        if subs is None or not len(subs):
            return None
        out = self.out.codec_context.encode_subtitle(subs)
        out.pts, out.dts, out.duration, out.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
        return out


def _copy_streams(out, src, info: VideoProbe, warnings: list[str]) -> dict:
    """Output streams for every audio and subtitle stream of ``src`` the container can hold: a
    text subtitle stream it cannot hold as is is converted to ``mov_text`` (a :class:`_Convert`
    is mapped), anything else it cannot hold is dropped with a warning."""
    mapping: dict = {}
    for s in src.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        try:
            mapping[s.index] = out.add_stream_from_template(s)
            continue
        except (ValueError, av.error.FFmpegError) as exc:
            why = exc
        name, container = s.codec_context.name, Path(out.name).suffix or "the"
        if s.type == "subtitle" and name in TEXT_SUBTITLES:
            try:
                stream = out.add_stream("mov_text")
                stream.time_base = s.time_base
                mapping[s.index] = _Convert(s, stream)
                warnings.append(f"subtitle stream {s.index} ({name}) converted to mov_text: the {container} "
                                f"container cannot hold {name}")
                continue
            except (ValueError, av.error.FFmpegError) as exc:
                why = exc
        warnings.append(f"{s.type} stream {s.index} ({name}) dropped: {container} container cannot hold it ({why})")
    return mapping


def _other_packets(src, mapping: dict, offset: float, seconds: float) -> Iterator[tuple[float, av.Packet]]:
    """(output time, packet) of the copied streams, shifted by ``offset`` s and trimmed to ``seconds``."""
    if not mapping:
        return
    streams = [s for s in src.streams if s.index in mapping]
    for packet in src.demux(streams):
        if packet.pts is None or packet.size == 0:
            continue
        tb = packet.stream.time_base
        shift = round(Fraction(offset).limit_denominator(10**6) / tb)
        t = float((packet.pts - shift) * tb)
        if t < -1e-6 or t >= seconds - 1e-6:
            continue
        target = mapping[packet.stream.index]
        if isinstance(target, _Convert):
            converted = target.packet(packet)
            if converted is None:
                continue
            packet, target = converted, target.out
        packet.pts -= shift
        packet.dts = packet.pts if packet.dts is None else packet.dts - shift
        packet.stream = target
        yield t, packet


#: Frame side data libx264 writes into the stream by default (``a53cc``) or obeys (regions of
#: interest); x264's own settings SEI on a source's first frame and the like are ignored.
ENCODER_SIDE_DATA = frozenset({SideDataType.A53_CC, SideDataType.REGIONS_OF_INTEREST})


def native_copies(info: VideoProbe, size: tuple[int, int]) -> bool:
    """Whether the final encode takes the source frames it copies as decoded: the input is YUV
    in the output's pixel format, unrotated (else every frame goes through RGB)."""
    return not info.is_rgb and info.rotation == 0 and info.pix_fmt == pixel_format(info, *size)


def _rgb_to_frame(rgb: np.ndarray, info: VideoProbe, pix_fmt: str, reformatter: VideoReformatter,
                  size: tuple[int, int]):
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24" if rgb.dtype == np.uint8 else "rgb48le")
    resize = (frame.width, frame.height) != size
    return reformatter.reformat(frame, format=pix_fmt, dst_colorspace=info.matrix,
                                dst_color_range=ColorRange.JPEG if info.full_range else ColorRange.MPEG,
                                width=size[0] if resize else None, height=size[1] if resize else None,
                                interpolation=Interpolation.LANCZOS if resize else None)


def _to_frame(item: np.ndarray | av.VideoFrame, info: VideoProbe, pix_fmt: str, reformatter: VideoReformatter,
              size: tuple[int, int]) -> av.VideoFrame:
    """An output frame from a rendered RGB array or a copied source frame (``FrameSource.decoded``).
    A source frame in the output's pixel format is encoded as decoded (resized where the output is
    larger: YUV to YUV, no matrix involved), exact where the RGB round trip rounded, and cheaper;
    one in another format, or carrying side data the encoder acts on by default
    (:data:`ENCODER_SIDE_DATA`: captions would be written for the copies only), goes through RGB
    like a rendered one."""
    if isinstance(item, np.ndarray):
        return _rgb_to_frame(item, info, pix_fmt, reformatter, size)
    # get() by type is the lookup that works (PyAV 18.1's `in` and values() do not; its stub wants str keys)
    if item.format.name != pix_fmt or any(item.side_data.get(kind) is not None  # type: ignore[call-overload]
                                          for kind in ENCODER_SIDE_DATA):
        return _rgb_to_frame(rgb_array(info, item, reformatter), info, pix_fmt, reformatter, size)
    if (item.width, item.height) != size:
        item = reformatter.reformat(item, width=size[0], height=size[1], interpolation=Interpolation.LANCZOS)
    item.pict_type = PictureType.NONE  # a decoder's I/P/B would force the encoder's frame type
    return item


def encode(target: Path, info: VideoProbe, frames: Iterable[np.ndarray | av.VideoFrame], total: int, fps: Fraction,
           size: tuple[int, int], span: Span, enc: Encoding = Encoding()) -> list[str]:
    """Encode exactly ``total`` frames (the last one repeated when ``frames`` runs short) to
    ``target`` with the input's audio and subtitles over ``span``; returns warnings."""
    tmp = temp_path(target)
    warnings: list[str] = []
    offset = info.start_time + span.first_frame / info.fps
    try:
        with av.open(str(tmp), "w") as out, av.open(info.path) as src:
            video = _video_stream(out, info, fps, size, enc)
            others = _other_packets(src, _copy_streams(out, src, info, warnings), offset, span.seconds)
            pending = next(others, None)
            reformatter, last, frame = VideoReformatter(), None, None
            frame_time = Fraction(1) / fps  # the encoder's time base (the stream's, as set above)
            for k, rgb in enumerate(padded(frames, total)):
                if rgb is not last or frame is None:  # a held last frame is converted once
                    frame, last = _to_frame(rgb, info, video.pix_fmt, reformatter, size), rgb
                frame.pts, frame.time_base = k, frame_time  # a decoded frame has its stream's time base
                for packet in video.encode(frame):
                    while pending is not None and pending[0] <= float(packet.pts * video.time_base):
                        out.mux(pending[1])
                        pending = next(others, None)
                    out.mux(packet)
            out.mux(video.encode(None))
            while pending is not None:
                out.mux(pending[1])
                pending = next(others, None)
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise DiskFull(f"no space left writing {tmp}: free some and rerun (rendered chunks are kept)") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return warnings


def padded(frames: Iterable[T], total: int) -> Iterator[T]:
    """``frames`` cut or padded (last frame held) to exactly ``total``."""
    k, last = 0, None
    for rgb in frames:
        if k == total:
            return
        last = rgb
        k += 1
        yield rgb
    if last is None:
        raise ValueError("no frames to encode")
    for _ in range(total - k):
        yield last
