"""Inputs for the enhance tests, built at test time from the real WAN clips of the
comfyui-workflow-templates package (never committed): three shots joined with hard cuts,
the middle one animated on twos (each drawing held for two frames), an audio track (a
quiet tone with loud clicks at known times) and a subtitle track, all made with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from devkit.groundtruth import build as gt

SHOTS = (("video_wan2_2_14B_i2v-1", 12, 1), ("text_to_video_wan-1", 8, 2), ("video_wan2_2_14B_t2v-1", 10, 1))
SIZE = (192, 112)  # width, height
CLICKS = (0.30, 0.95, 1.55)  # seconds
SUBTITLES = ((0.25, 0.70, "First line"), (1.00, 1.60, "Second line"))
RATE = 48000


@dataclass(frozen=True)
class Built:
    path: Path
    frames: np.ndarray  # uint8 [N,H,W,3], what was encoded
    fps: Fraction
    cuts: tuple[int, ...]  # interval i (frame i -> i+1) is a cut
    holds: tuple[int, ...]  # interval i repeats the same drawing
    clicks: tuple[float, ...]


def missing_reason() -> str | None:
    return gt.missing_reason()


def source_frames(shots=SHOTS, size=SIZE, offset: int = 0) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """(frames, cut intervals, hold intervals) of the shots: ``(clip, drawings, frames per drawing)``;
    drawing ``d`` is the clip's frame ``2 d + offset`` (another ``offset``: other drawings, same structure)."""
    frames, cuts, holds = [], [], []
    for name, drawings, hold in shots:
        if frames:
            cuts.append(len(frames) - 1)
        clip = gt.load_clip(name, size)
        for d in range(drawings):
            for r in range(hold):
                if r:
                    holds.append(len(frames) - 1)
                frames.append(clip[(2 * d + offset) % len(clip)])
    return np.stack(frames), tuple(cuts), tuple(holds)


def _audio(container, seconds: float, clicks) -> None:
    stream = container.add_stream("flac", rate=RATE, layout="mono")
    n = int(round(seconds * RATE))
    t = np.arange(n) / RATE
    x = 0.05 * np.sin(2 * np.pi * 440 * t)
    for c in clicks:
        i = int(round(c * RATE))
        x[i:i + 48] = 0.9
    pcm = (x * 32767).astype(np.int16)
    for start in range(0, n, 4096):
        frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 4096], format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, start
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _subtitles(path: Path, items) -> Path:
    def ts(s: float) -> str:
        ms = int(round(s * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    srt = path.with_suffix(".srt")
    srt.write_text("".join(f"{i + 1}\n{ts(a)} --> {ts(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(items)))
    return srt


def write_video(path: Path, frames: np.ndarray, fps: Fraction, *, codec: str = "libx264",
                pix_fmt: str = "yuv420p", audio: bool = True, subtitles: bool = True, clicks=CLICKS,
                options: dict | None = None) -> Path:
    """Encode ``frames`` (uint8 or uint16 RGB) with a click track and subtitles beside them."""
    seconds = len(frames) / fps
    packets = []
    srt = av.open(str(_subtitles(path, SUBTITLES))) if subtitles else None
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps, options=options or ({"crf": "8"} if codec == "libx264" else {}))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if audio:
            packets += list(_audio(out, float(seconds), clicks))
        if srt is not None:
            sub = out.add_stream_from_template(srt.streams.subtitles[0])
            for p in srt.demux(srt.streams.subtitles[0]):
                if p.size:
                    p.stream = sub
                    packets.append(p)
        fmt = "rgb24" if frames.dtype == np.uint8 else "rgb48le"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt).reformat(format=pix_fmt)
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        for p in packets:
            out.mux(p)
    if srt is not None:
        srt.close()
    return path


def build(path: Path, fps: Fraction = Fraction(24), **kw) -> Built:
    frames, cuts, holds = source_frames()
    write_video(path, frames, fps, **kw)
    return Built(path, frames, fps, cuts, holds, CLICKS)


def click_times(path: Path) -> list[float]:
    """Start times (s) of the clicks in a file's first audio stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [(f.time, f.to_ndarray()[0]) for f in c.decode(stream)]
    rate = stream.rate
    t0 = chunks[0][0] or 0.0
    x = np.concatenate([a for _, a in chunks]).astype(np.float64)
    x = x / (32767 if np.abs(x).max() > 2 else 1)
    loud = np.flatnonzero(np.abs(x) > 0.5)
    starts = [i for k, i in enumerate(loud) if k == 0 or i - loud[k - 1] > rate // 20]
    return [t0 + i / rate for i in starts]


def subtitle_times(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.subtitles:
            return []
        s = c.streams.subtitles[0]
        return [(float(p.pts * s.time_base), bytes(p)) for p in c.demux(s) if p.size]


def decode_rgb(path: Path) -> tuple[np.ndarray, Fraction]:
    """Every frame of a file's video as uint8 RGB, with its frame rate."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)]), Fraction(s.average_rate)
