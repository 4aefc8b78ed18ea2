"""WAN frame-length maths and the split first-last-frame (split-FLF) plan.

WAN's VAE compresses time by 4 after the first frame: a clip of ``length`` frames becomes
``(length - 1) // 4 + 1`` latent frames, so only lengths of the form ``4n + 1`` survive a
round trip. Any other length is silently cut down, and with it the end keyframe of a
first-last-frame clip. Everything here works on plain ints so the driver can import it
without torch or numpy.

Split-FLF renders one shot as two FLF segments that share the hero keyframe:
segment A goes first -> hero, segment B goes hero -> last, and B's first frame (the hero
generated a second time) is dropped when they are joined, so
``total = length_a + length_b - 1``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError

WAN_FPS = 16.0
MIN_SEGMENT = 5  # the shortest FLF segment with a frame between its two keyframes' latents
DEFAULT_MAX_SEGMENT = 81  # WAN 2.x native clip length
MIN_SPLIT_TOTAL = 2 * MIN_SEGMENT - 1

__all__ = [
    "DEFAULT_MAX_SEGMENT",
    "MIN_SEGMENT",
    "MIN_SPLIT_TOTAL",
    "SplitFLFPlan",
    "WAN_FPS",
    "floor_wan_length",
    "is_wan_length",
    "nearest_wan_length",
    "plan_split_flf",
]


def _as_int(n, name: str, node: str | None = None) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        if isinstance(n, float) and n.is_integer():
            return int(n)
        raise InputError(name, f"expected a whole number of frames, got {n!r}", node)
    return n


def is_wan_length(n: int) -> bool:
    """True when ``n`` frames survive WAN's VAE unchanged (``n = 4k + 1``, ``n >= 1``)."""
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1 and n % 4 == 1


def nearest_wan_length(n: int, *, name: str = "length") -> int:
    """The ``4k + 1`` nearest to ``n >= 1``; halfway cases (``n = 4k + 3``) go up."""
    n = _as_int(n, name)
    if n < 1:
        raise InputError(name, f"{n} frames cannot be made a WAN length 4n+1 (need at least 1 frame)")
    return 4 * ((n + 1) // 4) + 1


def floor_wan_length(n: int, *, name: str = "length") -> int:
    """The largest ``4k + 1`` that is ``<= n`` (``n >= 1``)."""
    n = _as_int(n, name)
    if n < 1:
        raise InputError(name, f"{n} frames cannot be made a WAN length 4n+1 (need at least 1 frame)")
    return 4 * ((n - 1) // 4) + 1


@dataclass(frozen=True)
class SplitFLFPlan:
    """Lengths of the two FLF segments of a split-FLF shot.

    ``length_a`` (first -> hero) and ``length_b`` (hero -> last) are ``4n + 1``;
    ``total = length_a + length_b - 1`` is ``4m + 1``; ``hero_index`` is the hero's frame
    index in the joined clip (A's last frame), a multiple of 4."""

    length_a: int
    length_b: int
    total: int
    hero_index: int
    requested_frames: int
    hero_requested: float
    fps: float
    max_segment: int
    notes: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        """Duration of the joined clip at ``fps``."""
        return self.total / self.fps

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["duration_s"] = self.duration_s
        return d


def _finite(value, name: str, node: str | None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(name, f"expected a number, got {value!r}", node) from None
    if not math.isfinite(v):
        raise InputError(name, f"must be a finite number, got {value!r}", node)
    return v


def _requested_frames(duration_s, fps: float, total_frames, node: str | None) -> int:
    if total_frames is not None:
        n = _as_int(total_frames, "total_frames", node)
        if n < 1:
            raise InputError("total_frames", f"must be at least 1 frame, got {n}", node)
        return n
    if duration_s is None:
        raise InputError("duration_s", "give a duration in seconds or total_frames", node)
    d = _finite(duration_s, "duration_s", node)
    n = math.floor(d * fps + 0.5)  # round half up, never banker's rounding
    if n < 1:
        raise InputError("duration_s", f"{d} s x fps {fps} = {d * fps:.3g} frames; need at least 1 frame", node)
    return n


def plan_split_flf(
    *,
    duration_s: float | None = None,
    fps: float = WAN_FPS,
    total_frames: int | None = None,
    hero_position: float = 0.5,
    hero_frame: int | None = None,
    max_segment: int = DEFAULT_MAX_SEGMENT,
    node: str | None = None,
) -> SplitFLFPlan:
    """Plan the two segments of a split-FLF shot.

    Rules:
      1. The requested total is ``total_frames``, else ``round(duration_s * fps)`` (half up);
         it is rounded to the nearest ``4m + 1`` (ties upward).
      2. The requested hero frame is ``hero_frame``, else ``hero_position * (total - 1)``;
         the hero index is the multiple of 4 nearest to it (ties upward), clamped into
         ``[4, total - 5]`` and into the range that keeps both segments within
         ``max_segment`` (a clamp is recorded in ``notes``).
      3. Each segment has at least 5 and at most ``max_segment`` frames; a total that
         needs longer segments raises an error that suggests more segments.
    """
    fps = _finite(fps, "fps", node)
    if fps <= 0:
        raise InputError("fps", f"must be > 0, got {fps}", node)
    max_segment = _as_int(max_segment, "max_segment", node)
    if max_segment < MIN_SEGMENT:
        raise InputError("max_segment", f"must be at least {MIN_SEGMENT} frames, got {max_segment}", node)
    seg_max = floor_wan_length(max_segment, name="max_segment")

    requested = _requested_frames(duration_s, fps, total_frames, node)
    total = nearest_wan_length(requested)
    source = "total_frames" if total_frames is not None else "duration_s"
    if total < MIN_SPLIT_TOTAL:
        raise InputError(
            source,
            f"{requested} frames (rounded to {total}) is too short for split FLF: two segments of at least "
            f"{MIN_SEGMENT} frames sharing the hero need {MIN_SPLIT_TOTAL} frames ({MIN_SPLIT_TOTAL / fps:.3g} s at "
            f"{fps:g} fps); render the shot as a single FLF segment instead",
            node,
        )
    if total > 2 * seg_max - 1:
        segments = math.ceil((total - 1) / (seg_max - 1))
        raise InputError(
            source,
            f"{requested} frames (rounded to {total}, {total / fps:.3g} s at {fps:g} fps) needs segments longer "
            f"than max_segment={max_segment}: two segments hold at most {2 * seg_max - 1} frames. "
            f"Split the shot into more segments (at least {segments}) or raise max_segment",
            node,
        )

    if hero_frame is not None:
        h = _as_int(hero_frame, "hero_frame", node)
        if not 0 <= h <= total - 1:
            raise InputError("hero_frame", f"frame {h} is outside the shot's frames 0..{total - 1}", node)
        hero_req = float(h)
    else:
        pos = _finite(hero_position, "hero_position", node)
        if not 0.0 <= pos <= 1.0:
            raise InputError("hero_position", f"must be a fraction in 0..1, got {pos}", node)
        hero_req = pos * (total - 1)

    nearest = 4 * math.floor(hero_req / 4 + 0.5)
    lo, hi = max(MIN_SEGMENT - 1, total - seg_max), min(total - MIN_SEGMENT, seg_max - 1)
    hero = min(max(nearest, lo), hi)
    notes = []
    if hero != nearest:
        why = f"each segment needs {MIN_SEGMENT}..{seg_max} frames"
        notes.append(f"hero moved from frame {nearest} to {hero}: {why}")
    return SplitFLFPlan(
        length_a=hero + 1,
        length_b=total - hero,
        total=total,
        hero_index=hero,
        requested_frames=requested,
        hero_requested=hero_req,
        fps=fps,
        max_segment=max_segment,
        notes=tuple(notes),
    )
