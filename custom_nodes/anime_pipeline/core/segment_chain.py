"""The N-segment plan of a long shot: a chain of first-last-frame segments.

A WAN segment holds at most ``max_segment`` frames (81, about 5 s at 16 fps), so a longer
shot is rendered as ``N`` segments joined end to start. Consecutive segments share one
frame (a keyframe, or for continuation the previous segment's last frame), which the
join keeps once, so with every length ``4n + 1``::

    total = sum(lengths) - (N - 1)        (itself 4m + 1)

and the shared frames ("joins") sit at multiples of 4 in the joined clip. Two plans:

* **keyframed**: the joins are the keyframes' times (each snapped to the nearest
  multiple of 4 WAN frames); every segment must fit between ``MIN_SEGMENT`` and
  ``max_segment`` frames, or the plan is refused naming the keyframes around it.
* **continuation**: the fewest segments that fit, ``ceil((total - 1) / (max - 1))``,
  as equal as 4-frame steps allow (earlier segments take the extra steps).

Plain ints only, so the driver imports it without torch or numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError
from .segments import MIN_SEGMENT, _as_int, floor_wan_length, is_wan_length

__all__ = ["SegmentChainPlan", "plan_continuation", "plan_keyframed"]


@dataclass(frozen=True)
class SegmentChainPlan:
    """Lengths of the segments of one long shot, and where they join.

    ``joins[k]`` is the index in the joined clip of the frame segments ``k`` and ``k + 1``
    share (0-based segments); ``seams[k] = joins[k] + 1`` is the first frame after it
    (``AP_FLFChainConcat``'s ``seam_index``)."""

    lengths: tuple[int, ...]
    total: int
    notes: tuple[str, ...] = ()

    @property
    def joins(self) -> tuple[int, ...]:
        out, at = [], 0
        for n in self.lengths[:-1]:
            at += n - 1
            out.append(at)
        return tuple(out)

    @property
    def seams(self) -> tuple[int, ...]:
        return tuple(j + 1 for j in self.joins)

    def segment_of(self, frame: int) -> int:
        """The segment (0-based) frame ``frame`` of the joined clip comes from (a shared
        frame counts for the later segment, whose first frame it replaced)."""
        seg = 0
        for k, j in enumerate(self.joins):
            if frame > j:
                seg = k + 1
        return seg


def _check(total, max_segment, node: str | None) -> tuple[int, int]:
    total = _as_int(total, "total_frames", node)
    if not is_wan_length(total):
        raise InputError("total_frames", f"{total} is not a WAN length 4n+1", node)
    max_segment = _as_int(max_segment, "max_segment", node)
    if max_segment < MIN_SEGMENT:
        raise InputError("max_segment", f"must be at least {MIN_SEGMENT} frames, got {max_segment}", node)
    return total, floor_wan_length(max_segment, name="max_segment")


def plan_continuation(total_frames: int, max_segment: int, *, node: str | None = None) -> SegmentChainPlan:
    """The fewest segments of at most ``max_segment`` frames whose chain is ``total_frames`` long."""
    total, seg_max = _check(total_frames, max_segment, node)
    steps = (total - 1) // 4  # 4-frame steps of the joined clip
    count = max(1, math.ceil(steps / ((seg_max - 1) // 4)))
    base, extra = divmod(steps, count)
    lengths = tuple(4 * (base + (1 if k < extra else 0)) + 1 for k in range(count))
    if count > 1 and min(lengths) < MIN_SEGMENT:
        raise InputError("total_frames", f"{total} frames cannot be split into segments of {MIN_SEGMENT}.."
                         f"{seg_max} frames", node)
    return SegmentChainPlan(lengths, total)


def plan_keyframed(total_frames: int, key_frames: list[float], max_segment: int, *,
                   names: list[str] | None = None, fps: float = 16.0, node: str | None = None) -> SegmentChainPlan:
    """Segments between keyframes at the (fractional) WAN frame positions ``key_frames``
    (the first 0, the last the clip's end). Interior keyframes snap to the nearest multiple
    of 4 (ties up). ``names`` label the keyframes in errors (default ``keyframe k``)."""
    total, seg_max = _check(total_frames, max_segment, node)
    if len(key_frames) < 2:
        raise InputError("keyframes", f"need at least 2 keyframes (first and last), got {len(key_frames)}", node)
    names = names or [f"keyframe {k}" for k in range(len(key_frames))]
    points = [0] + [4 * math.floor(p / 4 + 0.5) for p in key_frames[1:-1]] + [total - 1]
    notes = [f"{names[k]} moved from frame {key_frames[k]:g} to {p} (a multiple of 4)"
             for k, p in enumerate(points) if 0 < k < len(points) - 1 and p != key_frames[k]]
    for k in range(len(points) - 1):
        n = points[k + 1] - points[k] + 1
        where = f"{names[k]} -> {names[k + 1]}"
        if n < MIN_SEGMENT:
            raise InputError("keyframes", f"segment {where} is {max(n, 0)} WAN frames; a segment needs at least "
                             f"{MIN_SEGMENT} ({(MIN_SEGMENT - 1) / fps:g} s between keyframes)", node)
        if n > seg_max:
            raise InputError("keyframes", f"segment {where} is {n} WAN frames ({(n - 1) / fps:.2f} s), longer than "
                             f"the model renders ({seg_max} frames, {(seg_max - 1) / fps:.2f} s); add a keyframe "
                             "between them", node)
    lengths = tuple(points[k + 1] - points[k] + 1 for k in range(len(points) - 1))
    return SegmentChainPlan(lengths, total, tuple(notes))
