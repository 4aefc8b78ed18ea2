"""The episode cut: every shot's final clip in storyboard order, fitted to exactly
``round(duration_s x fps)`` frames (tail trimmed, or last frame held), joined into
``{PRJ}_EP{NNN}_cut.mp4`` with PyAV (H.264, yuv420p, delivery size and fps).

A shot without a clip (failed, or waiting for review) is filled with black frames of
its duration, so the cut keeps the storyboard's timing; the manifest lists them."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from anime_pipeline.core.naming import episode_cut_name
from driver.files import file_intact, file_record
from driver.story.storyboard import Storyboard

log = logging.getLogger(__name__)


def fps_fraction(fps: float) -> Fraction:
    return Fraction(str(fps)).limit_denominator(1001 * 1000)


def fit_frames(frames, n: int, notes: dict, key: str):
    """Yield exactly ``n`` frames from the iterable ``frames``: the tail trimmed or the
    last frame repeated (streaming: one decoded frame in memory at a time). Writes what
    was done into ``notes[key]``."""
    count, last, extra = 0, None, 0
    for frame in frames:
        if count < n:
            last = frame
            count += 1
            yield frame
        else:
            extra += 1
    if last is None:
        raise ValueError(f"{key}: the clip has no frames")
    held = n - count
    for _ in range(held):
        yield last
    notes[key] = f"trimmed {extra}" if extra else (f"held last frame x{held}" if held else "exact")


def decode(path: Path, width: int, height: int):
    """RGB frames of a clip at ``width`` x ``height``, one at a time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.width * stream.height > LEAN_ABOVE_PIXELS:
            stream.thread_count = 1  # each decoding thread holds frames of its own
        for f in container.decode(stream):
            yield f.to_ndarray(format="rgb24", width=width, height=height)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


#: Above this many pixels a frame, x264 is told to hold fewer frames: its default look-ahead,
#: references and B-frames (and a frame thread per core) held 1.4 GB at 4096x4096 on 2 cores
#: (benchmarks/bench_driver_memory.py); smaller deliveries keep the default encode.
LEAN_ABOVE_PIXELS = 1920 * 1088


def lean_x264(width: int, height: int) -> dict[str, str]:
    """x264 options that bound the encoder's memory for a large frame (``{}`` otherwise)."""
    if width * height <= LEAN_ABOVE_PIXELS:
        return {}
    return {"x264-params": "threads=2:rc-lookahead=4:ref=1:bframes=1"}


def write_cut(sb: Storyboard, clips: dict[str, Path | None], out: Path, *, crf: int = 18) -> dict:
    """Encode the cut; ``clips`` maps shot id -> clip path (None: black placeholder).
    Returns per-shot fitting notes and the total frame count."""
    d = sb.delivery
    rate = fps_fraction(d.fps)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part.mp4")  # per process: two writers never share it
    notes: dict[str, str] = {}
    total = 0
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = d.width, d.height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", **lean_x264(d.width, d.height)}
        black = np.zeros((d.height, d.width, 3), np.uint8)
        for shot in sb.shots:
            n = shot.frames(d.fps)
            path = clips.get(shot.id)
            if path is None:
                frames, notes[shot.id] = [black] * n, "missing: black placeholder"
            else:
                frames = fit_frames(decode(path, d.width, d.height), n, notes, shot.id)
            for arr in frames:
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts = total
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                total += 1
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(out)
    return {"frames": total, "fps": d.fps, "shots": notes}


def assemble(sb: Storyboard, manifest) -> dict | None:
    """Write the cut from the manifest's clip assets; record it in the manifest."""
    run_dir = manifest.run_dir
    clips: dict[str, Path | None] = {}
    for shot in sb.shots:
        asset = (manifest.data["shots"].get(shot.id) or {}).get("assets", {}).get("video")
        clips[shot.id] = run_dir / asset["path"] if file_intact(run_dir, asset) else None
    if not any(clips.values()):
        log.info("no clips yet: episode cut not written")
        return None
    out = run_dir / episode_cut_name(sb.project, sb.episode)
    sources = {s.id: [(manifest.data["shots"][s.id]["assets"]["video"]["sha256"] if clips[s.id] else None),
                      s.frames(sb.delivery.fps)] for s in sb.shots}
    previous = manifest.data["episode"].get("cut")
    if previous and previous.get("sources") == sources and previous.get("fps") == sb.delivery.fps \
            and file_intact(run_dir, previous):
        log.info("episode cut %s is up to date", out.name)
        return previous
    info = write_cut(sb, clips, out)
    missing = [sid for sid, p in clips.items() if p is None]
    if missing:
        log.warning("episode cut has black placeholders for %s", ", ".join(missing))
    record = {**file_record(run_dir, out), **info, "placeholders": missing, "sources": sources}
    manifest.data["episode"]["cut"] = record
    manifest.save()
    log.info("episode cut: %s (%d frames at %g fps)", out.name, info["frames"], sb.delivery.fps)
    return record
