"""WAN length maths and the split-FLF plan (core/segments.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.segments import (
    SplitFLFPlan,
    floor_wan_length,
    is_wan_length,
    nearest_wan_length,
    plan_split_flf,
)


def brute_nearest_wan(n: int) -> int:
    """Scan the 4k+1 values; on a tie keep the larger one."""
    best = None
    for cand in range(1, n + 8, 4):
        if best is None or abs(cand - n) < abs(best - n) or (abs(cand - n) == abs(best - n) and cand > best):
            best = cand
    return best


def test_segments_imports_neither_torch_nor_numpy():
    code = (
        "import sys, anime_pipeline.core.segments; "
        "bad = [m for m in ('torch', 'numpy') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"core.segments pulled in {proc.stdout.strip() or proc.stderr.strip()}"


@pytest.mark.parametrize(
    "n, expected",
    [(1, 1), (2, 1), (3, 5), (4, 5), (5, 5), (6, 5), (7, 9), (77, 77), (78, 77), (79, 81), (80, 81), (81, 81), (82, 81)],
)
def test_nearest_wan_length_known_values(n, expected):
    assert nearest_wan_length(n) == expected


def test_is_wan_length():
    assert [n for n in range(0, 20) if is_wan_length(n)] == [1, 5, 9, 13, 17]
    assert not is_wan_length(5.0) and not is_wan_length(True)


@given(st.integers(min_value=1, max_value=5000))
def test_nearest_and_floor_wan_length_properties(n):
    near, floor = nearest_wan_length(n), floor_wan_length(n)
    assert near % 4 == 1 and floor % 4 == 1
    assert near == brute_nearest_wan(n)
    assert floor <= n < floor + 4


@pytest.mark.parametrize("bad", [0, -3])
def test_nearest_wan_length_rejects_empty(bad):
    with pytest.raises(InputError, match="4n\\+1"):
        nearest_wan_length(bad)


def test_plan_five_seconds_at_wan_fps():
    plan = plan_split_flf(duration_s=5.0, fps=16)
    assert (plan.length_a, plan.length_b, plan.total, plan.hero_index) == (41, 41, 81, 40)
    assert plan.requested_frames == 80
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["length_a"] == 41 and d["duration_s"] == pytest.approx(81 / 16) and d["notes"] == []
    with pytest.raises(Exception):
        plan.total = 5  # frozen


def test_plan_known_cases():
    # 3 s at 24 fps = 72 frames -> 73 (72-69=3 > 73-72=1); hero at 1/3 of 72 = 24
    p = plan_split_flf(duration_s=3.0, fps=24, hero_position=1 / 3)
    assert (p.total, p.hero_index, p.length_a, p.length_b) == (73, 24, 25, 49)
    # hero frame index 10 -> nearest multiple of 4 with tie upward: 10 -> 12
    p = plan_split_flf(total_frames=33, hero_frame=10)
    assert (p.hero_index, p.length_a, p.length_b) == (12, 13, 21)
    # hero at the very start is clamped to 4 (segment A needs 5 frames)
    p = plan_split_flf(total_frames=33, hero_position=0.0)
    assert (p.hero_index, p.length_a, p.length_b) == (4, 5, 29) and p.notes
    # round half up: 0.59375 s x 16 = 9.5 -> 10 frames -> 9
    assert plan_split_flf(duration_s=0.59375, fps=16).requested_frames == 10


def test_plan_max_segment_moves_hero_and_errors_on_long_totals():
    p = plan_split_flf(total_frames=121, hero_position=0.1, max_segment=81)
    assert (p.length_a, p.length_b) == (41, 81) and p.notes
    with pytest.raises(InputError, match="more segments \\(at least 3\\)") as err:
        plan_split_flf(total_frames=200, max_segment=81)
    assert "total_frames" in str(err.value) and "201" in str(err.value)
    with pytest.raises(InputError, match="duration_s.*more segments"):
        plan_split_flf(duration_s=20.0, fps=16)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"total_frames": 6}, "total_frames"),  # -> 5 frames, below the 9 a split needs
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"duration_s": 2.0, "fps": 0}, "fps"),
        ({"total_frames": 81, "hero_frame": 81}, "hero_frame"),
        ({"total_frames": 81, "hero_position": 1.5}, "hero_position"),
        ({"total_frames": 81, "max_segment": 4}, "max_segment"),
        ({"total_frames": 2.5}, "total_frames"),
    ],
)
def test_plan_bad_input_names_the_input(kwargs, name):
    with pytest.raises(InputError) as err:
        plan_split_flf(node="AP_FLFSegmentPlan", **kwargs)
    assert f"AP_FLFSegmentPlan.{name}:" in str(err.value)


def brute_hero(hero_req: float, total: int, seg_max: int) -> int:
    allowed = [h for h in range(0, total, 4) if 5 <= h + 1 <= seg_max and 5 <= total - h <= seg_max]
    return min(allowed, key=lambda h: (abs(h - hero_req), -h))


@settings(max_examples=300)
@given(
    total=st.integers(min_value=1, max_value=400),
    pos=st.floats(min_value=0.0, max_value=1.0),
    max_segment=st.integers(min_value=5, max_value=161),
)
def test_plan_invariants(total, pos, max_segment):
    seg_max = floor_wan_length(max_segment)
    rounded = brute_nearest_wan(total)
    if rounded < 9:
        with pytest.raises(InputError, match="too short"):
            plan_split_flf(total_frames=total, hero_position=pos, max_segment=max_segment)
        return
    if rounded > 2 * seg_max - 1:
        with pytest.raises(InputError, match="more segments"):
            plan_split_flf(total_frames=total, hero_position=pos, max_segment=max_segment)
        return
    p = plan_split_flf(total_frames=total, hero_position=pos, max_segment=max_segment)
    assert isinstance(p, SplitFLFPlan)
    assert p.total == rounded and p.total % 4 == 1
    assert p.length_a % 4 == 1 and p.length_b % 4 == 1
    assert p.total == p.length_a + p.length_b - 1
    assert p.hero_index % 4 == 0 and 4 <= p.hero_index <= p.total - 5
    assert p.hero_index == p.length_a - 1
    assert 5 <= p.length_a <= max_segment and 5 <= p.length_b <= max_segment
    # the hero is the allowed multiple of 4 nearest the request, ties upward
    nearest_any = min(range(0, p.total + 4, 4), key=lambda h: (abs(h - pos * (p.total - 1)), -h))
    if 4 <= nearest_any <= p.total - 5 and nearest_any + 1 <= seg_max and p.total - nearest_any <= seg_max:
        assert p.hero_index == nearest_any and not p.notes
    assert p.hero_index == brute_hero(pos * (p.total - 1), p.total, seg_max)


@given(seconds=st.floats(min_value=0.6, max_value=10.0), fps=st.sampled_from([12.0, 16.0, 23.976, 24.0, 30.0]))
def test_plan_from_seconds_matches_frames(seconds, fps):
    frames = int(seconds * fps + 0.5)
    try:
        by_frames = plan_split_flf(total_frames=frames, fps=fps, max_segment=161)
    except InputError:
        return
    assert plan_split_flf(duration_s=seconds, fps=fps, max_segment=161) == by_frames


def test_node_maps_zero_and_minus_one_to_duration_and_fraction():
    from anime_pipeline.nodes.video import FLFSegmentPlan

    a, b, total, hero, plan = FLFSegmentPlan().plan(5.0, 16.0, 0.5, 81, total_frames=0, hero_frame=-1)
    assert (a, b, total, hero) == (41, 41, 81, 40)
    assert json.loads(plan)["requested_frames"] == 80
    assert FLFSegmentPlan().plan(5.0, 16.0, 0.5, 81, total_frames=17, hero_frame=4)[:4] == (5, 13, 17, 4)
