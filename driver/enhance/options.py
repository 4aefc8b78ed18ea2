"""The enhance command's options: presets, frame rates, ``--clip`` and the output path checks."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

from anime_pipeline.core.retime import GUARD_THRESHOLD

from .assemble import Encoding
from .errors import OptionsInvalid, OutputRefused
from .probe import VideoProbe

CONTAINERS = {".mkv", ".mp4", ".mov"}


@dataclass(frozen=True)
class Preset:
    mode: str  # AP_AnimeRetime mode
    upscale_model: bool  # use the configured upscale model
    encoding: Encoding
    fast_flow: bool = False  # one optical-flow estimate instead of two (about half the interpolation work)


PRESETS = {
    # holds and cuts copied, motion interpolated, the upscale model when one is configured
    "anime-clean": Preset("keep_holds", True, Encoding("libx264", 18, "medium")),
    # smooth retime of motion (on twos becomes on ones), higher quality encode
    "anime-strong": Preset("smooth", True, Encoding("libx264", 16, "slow")),
    # cheapest interpolation (one flow estimate), no upscale model (a resize when --scale asks), fastest encode
    "fast": Preset("keep_holds", False, Encoding("libx264", 23, "veryfast"), fast_flow=True),
}


@dataclass(frozen=True)
class Options:
    input: Path
    out: Path
    fps: float | None = None
    fps_multiplier: float | None = None
    scale: int = 1
    preset: str = "anime-clean"
    clip: str | None = None
    server: str | None = None
    comfyui: Path | None = None
    work: Path | None = None
    overwrite: bool = False
    dry_run: bool = False
    memory_budget_gb: float | None = None
    max_chunk_frames: int = 0
    skip_errors: bool = False
    upscale_model: str | None = None
    mode: str | None = None  # overrides the preset's
    codec: str | None = None
    crf: int | None = None
    encoder_preset: str | None = None
    fallback_threshold: float = GUARD_THRESHOLD  # bad mid-frame fallback (0 = off)

    def encoding(self) -> Encoding:
        base = PRESETS[self.preset].encoding
        return replace(base, codec=self.codec or base.codec, crf=base.crf if self.crf is None else self.crf,
                       preset=self.encoder_preset or base.preset)

    def retime_mode(self) -> str:
        return self.mode or PRESETS[self.preset].mode

    def model(self) -> str | None:
        return self.upscale_model if PRESETS[self.preset].upscale_model else None

    def work_dir(self) -> Path:
        return self.work or self.out.with_name(f"{self.out.stem}.enhance")

    def settings(self) -> dict:
        """What decides the rendered chunks (a rerun with the same settings reuses them)."""
        keep = ("fps", "fps_multiplier", "scale", "preset", "clip", "max_chunk_frames", "upscale_model", "mode",
                "memory_budget_gb", "skip_errors", "fallback_threshold")
        return {k: v for k, v in asdict(self).items() if k in keep}


def check(opts: Options) -> None:
    """Option errors found before the input is read."""
    if opts.preset not in PRESETS:
        raise OptionsInvalid(f"--preset must be one of {', '.join(PRESETS)}, got {opts.preset!r}")
    if opts.fps is not None and opts.fps_multiplier is not None:
        raise OptionsInvalid("give --fps or --fps-multiplier, not both")
    for name, value in (("--fps", opts.fps), ("--fps-multiplier", opts.fps_multiplier)):
        if value is not None and not (math.isfinite(value) and 0 < value <= 1000):
            raise OptionsInvalid(f"{name} must be a number in (0, 1000], got {value}")
    if not (math.isfinite(opts.fallback_threshold) and opts.fallback_threshold >= 0):
        raise OptionsInvalid(f"--fallback-threshold must be >= 0 (0 = off), got {opts.fallback_threshold}")
    if opts.scale not in (1, 2, 3, 4):
        raise OptionsInvalid(f"--scale must be 1, 2, 3 or 4, got {opts.scale}")
    if opts.out.suffix.lower() not in CONTAINERS:
        raise OptionsInvalid(f"--out {opts.out}: the file name must end in one of {sorted(CONTAINERS)}")
    if opts.input.exists() and opts.out.exists() and opts.input.resolve() == opts.out.resolve():
        raise OutputRefused(f"--out {opts.out} is the input file; write the result elsewhere")
    if opts.out.exists() and not opts.overwrite:
        raise OutputRefused(f"{opts.out} exists; pass --overwrite to replace it")
    if not opts.out.parent.is_dir():
        raise OptionsInvalid(f"--out {opts.out}: folder {opts.out.parent} does not exist")


def fps_out(opts: Options, info: VideoProbe) -> Fraction:
    if opts.fps is not None:
        return Fraction(opts.fps).limit_denominator(1001)
    return (info.fps * Fraction(opts.fps_multiplier or 2).limit_denominator(1000)).limit_denominator(1001)


_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    m = _TIME.match(text.strip())
    if not m:
        raise OptionsInvalid(f"--clip: {text!r} is not a time (HH:MM:SS[.mmm], MM:SS or seconds)")
    parts = [p for p in m.groups() if p is not None]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


def clip_frames(clip: str | None, info: VideoProbe) -> tuple[int, int | None]:
    """``--clip START-END`` as constant-rate frame indices ``start .. stop - 1`` (``stop`` None = to the end)."""
    if not clip:
        return 0, None
    start_s, sep, end_s = clip.partition("-")
    if not sep:
        raise OptionsInvalid(f"--clip {clip!r}: expected START-END, e.g. 00:10:00-00:10:20")
    start, end = parse_time(start_s), parse_time(end_s)
    if end <= start:
        raise OptionsInvalid(f"--clip {clip!r}: the end must come after the start")
    if start >= info.duration:
        raise OptionsInvalid(f"--clip {clip!r} starts after the end of the video ({info.duration:.3f} s)")
    if end > info.duration + 1e-6:
        raise OptionsInvalid(f"--clip {clip!r} ends after the end of the video ({info.duration:.3f} s)")
    first = round(Fraction(start).limit_denominator(10**6) * info.fps)
    stop = round(Fraction(end).limit_denominator(10**6) * info.fps)
    return first, max(stop, first + 1)
