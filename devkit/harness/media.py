"""Reading back the videos a test made: frame count (by decoding every frame), frame
rate and size, and the single mp4 a ComfyUI prompt saved."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import av


class VideoInfo(NamedTuple):
    frames: int
    size: tuple[int, int]
    fps: float


def probe_video(path: str | Path) -> VideoInfo:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return VideoInfo(frames, (stream.codec_context.width, stream.codec_context.height), float(stream.average_rate))


def saved_video(client, entry: dict, dest_dir: Path) -> VideoInfo:
    """Download the one mp4 a finished prompt saved and probe it."""
    refs = [r for r in client.output_files(entry) if r["filename"].endswith(".mp4")]
    assert len(refs) == 1, f"expected one mp4 output, got {[r['filename'] for r in refs]}"
    return probe_video(client.download(refs[0], Path(dest_dir) / refs[0]["filename"]))
