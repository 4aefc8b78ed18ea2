"""core.retime: exact timing for every ratio, copies across cuts and holds, smooth mode."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anime_pipeline.core.interpolate import LinearBlend
from anime_pipeline.core.retime import output_count, plan, rational, retime

RATES = [8.0, 12.0, 15.0, 16.0, 23.976, 24000 / 1001, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 60.0, 120.0]
labels_st = st.lists(st.sampled_from(["cut", "hold", "motion"]), min_size=0, max_size=40)


def _clip(n: int, h: int = 6, w: int = 40) -> torch.Tensor:
    """Distinct frames: a bright column moving right by 3 px per frame on a dark ramp."""
    frames = np.tile(np.linspace(0.0, 0.2, w, dtype=np.float32), (n, h, 1))
    for i in range(n):
        frames[i, :, (3 * i) % w] = 1.0
    return torch.from_numpy(np.repeat(frames[..., None], 3, axis=3))


def test_rational_rates_are_exact():
    assert rational(16.0) == 16
    assert rational(23.976) == Fraction(2997, 125)
    assert rational(24000 / 1001) == Fraction(24000, 1001)
    assert rational(29.97) == Fraction(2997, 100)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 400), fps_in=st.sampled_from(RATES), fps_out=st.sampled_from(RATES))
def test_count_and_positions_follow_the_formula(n, fps_in, fps_out):
    steps = plan(n, fps_in, fps_out, ["motion"] * (n - 1))
    ratio = Fraction(fps_in).limit_denominator(10000) / Fraction(fps_out).limit_denominator(10000)
    assert len(steps) == output_count(n, fps_in, fps_out)
    # Exactly the k with k * ratio <= n - 1: the last one fits, the next one would not.
    assert [s.position for s in steps] == [k * ratio for k in range(len(steps))]
    assert steps[-1].position <= n - 1 < len(steps) * ratio
    for s in steps:
        assert s.a == math.floor(s.position) or s.is_copy


def test_long_16_to_24_never_drifts():
    n = 16 * 60 * 10 + 1  # ten minutes at 16 fps
    steps = plan(n, 16.0, 24.0, ["motion"] * (n - 1))
    assert len(steps) == 24 * 60 * 10 + 1
    assert steps[-1].position == n - 1 and steps[-1].is_copy and steps[-1].a == n - 1
    assert {s.t for s in steps} == {0, Fraction(2, 3), Fraction(1, 3)}


@pytest.mark.parametrize("fps_in,fps_out,n,expected", [
    (16, 24, 17, 25), (16, 32, 17, 33), (24, 48, 10, 19), (24, 30, 9, 11), (30, 24, 11, 9), (24, 16, 10, 7),
    (16, 24, 1, 1), (16, 24, 2, 2),
])
def test_known_counts(fps_in, fps_out, n, expected):
    assert len(plan(n, fps_in, fps_out, ["motion"] * (n - 1))) == expected


@settings(max_examples=150, deadline=None)
@given(labels=labels_st, fps_in=st.sampled_from(RATES), fps_out=st.sampled_from(RATES),
       mode=st.sampled_from(["keep_holds", "smooth"]))
def test_frames_on_cut_intervals_are_copies_of_the_nearer_frame(labels, fps_in, fps_out, mode):
    n = len(labels) + 1
    frames = _clip(n)
    out, steps = retime(frames, fps_in, fps_out, labels, mode=mode, interpolator=LinearBlend())
    assert out.shape == (len(steps), *frames.shape[1:]) and out.dtype == torch.float32
    for k, s in enumerate(steps):
        i = math.floor(s.position)
        if s.position != i and labels[i] == "cut":
            nearer = i if s.position - i < Fraction(1, 2) else i + 1
            assert torch.equal(out[k], frames[nearer])
        if s.position == i and (i > 0 and labels[i - 1] == "cut" or i < n - 1 and labels[i] == "cut"):
            assert any(torch.equal(out[k], f) for f in frames)  # frames at a cut are source frames


@settings(max_examples=150, deadline=None)
@given(labels=labels_st, fps_in=st.sampled_from(RATES), fps_out=st.sampled_from(RATES))
def test_keep_holds_reproduces_held_drawings_exactly(labels, fps_in, fps_out):
    n = len(labels) + 1
    frames = _clip(n)
    for i, lab in enumerate(labels):  # make held frames real repeats of their drawing
        if lab == "hold":
            frames[i + 1] = frames[i]
    out, steps = retime(frames, fps_in, fps_out, labels, mode="keep_holds", interpolator=LinearBlend())
    for k, s in enumerate(steps):
        i = math.floor(s.position)
        if s.position == i:
            assert torch.equal(out[k], frames[i])
        elif labels[i] == "hold":
            assert torch.equal(out[k], frames[i])


def _centroid(frame: torch.Tensor) -> float:
    col = frame[..., 0].double().mean(dim=0).numpy()  # bars on black: intensity-weighted x
    return float((col * np.arange(col.size)).sum() / col.sum())


@settings(max_examples=60, deadline=None)
@given(holds=st.lists(st.integers(1, 3), min_size=2, max_size=6), fps_out=st.sampled_from([24.0, 30.0, 32.0, 48.0]))
def test_smooth_mode_moves_monotonically_through_former_holds(holds, fps_out):
    # Drawings on twos/threes: drawing d is a bar at x = 6 d, shown holds[d] frames.
    w = 8 + 6 * len(holds)
    drawings = []
    for d, count in enumerate(holds):
        f = np.zeros((4, w, 3), np.float32)
        f[:, 6 * d + 2 : 6 * d + 4] = 1.0
        drawings += [f] * count
    frames = torch.from_numpy(np.stack(drawings))
    labels = []
    for d, count in enumerate(holds):
        labels += ["hold"] * (count - 1) + (["motion"] if d < len(holds) - 1 else [])
    out, steps = retime(frames, 16.0, fps_out, labels, mode="smooth", interpolator=LinearBlend())
    xs = [_centroid(f) for f in out]
    last_anchor = len(frames) - holds[-1]
    moving = [x for x, s in zip(xs, steps) if s.position <= last_anchor]
    assert all(b > a for a, b in zip(moving, moving[1:])), moving  # strictly: no frame stands still
    held = [x for x, s in zip(xs, steps) if s.position >= last_anchor]
    assert not held or max(held) - min(held) < 1e-6  # the last drawing of the shot is held


def test_keep_holds_keeps_the_cadence_that_smooth_removes():
    frames = torch.from_numpy(np.stack([np.full((2, 2, 3), v, np.float32) for v in (0.0, 0.0, 0.5, 0.5, 1.0)]))
    labels = ["hold", "motion", "hold", "motion"]
    keep, _ = retime(frames, 16, 32, labels, mode="keep_holds", interpolator=LinearBlend())
    smooth, _ = retime(frames, 16, 32, labels, mode="smooth", interpolator=LinearBlend())
    assert [round(float(f.mean()), 3) for f in keep] == [0, 0, 0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0]
    assert [round(float(f.mean()), 3) for f in smooth] == [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="labels for 3 frames"):
        plan(3, 16, 24, ["motion"])
    with pytest.raises(ValueError, match="mode"):
        plan(2, 16, 24, ["motion"], mode="fast")


def test_progress_reaches_the_total():
    calls = []
    retime(_clip(5), 16, 24, ["motion"] * 4, interpolator=LinearBlend(), progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (7, 7) and all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
