"""Downloaded outputs checked before they are recorded: images must decode, videos must
demux with the expected frame count."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp"}
VIDEO_EXT = {".mp4", ".webm", ".mov", ".mkv", ".nut"}  # .nut: enhance's lossless chunks


def verify_file(path: Path, frames: int | None = None) -> str | None:
    """What is wrong with a downloaded output (empty, undecodable, wrong frame count),
    or None. Videos are checked by demuxing, without decoding."""
    if path.stat().st_size == 0:
        return "downloaded empty"
    ext = path.suffix.lower()
    try:
        if ext in IMAGE_EXT:
            with Image.open(path) as im:
                im.verify()
        elif ext in VIDEO_EXT:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                count = sum(1 for packet in container.demux(stream) if packet.size)
            if frames is not None and count != frames:
                return f"has {count} frames, expected {frames}"
    except (OSError, ValueError, IndexError, av.error.FFmpegError) as exc:
        return f"cannot be read as {ext.lstrip('.')}: {exc}"
    return None
