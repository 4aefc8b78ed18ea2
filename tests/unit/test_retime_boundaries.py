"""core.retime at job and worker boundaries: every output frame is made exactly once and equals
the frame an unbatched, one-output-at-a-time computation gives.

``retime`` groups consecutive outputs between one source pair into a job (one interpolator
call with several phases) and runs the jobs on ``workers`` threads with at most
``2 * workers`` in flight. A job boundary or a full in-flight window must not skip, repeat
or misplace an output frame, for clip lengths around those sizes, WAN lengths (4n+1) and
1-2 frame clips, with cuts and holds on the first and the last interval."""

from __future__ import annotations

import math
import threading
from fractions import Fraction

import numpy as np
import pytest
import torch

from anime_pipeline.core.interpolate import LinearBlend
from anime_pipeline.core.retime import output_count, retime
from devkit.synthetic_clips import random_frames

LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 81]
RATES = [(16.0, 24.0), (16.0, 32.0), (24.0, 16.0), (16.0, 30.0), (24000 / 1001, 30.0), (16.0, 16.0)]


def _frames(n: int) -> torch.Tensor:
    return random_frames(n, 6, 10, 0.05, 0.95)


def _labels(n: int) -> list[str]:
    """A mix of cut / hold / motion with the first and last intervals included."""
    if n < 2:
        return []
    rng = np.random.default_rng(1000 + n)
    labels = list(rng.choice(["motion", "motion", "hold", "cut"], n - 1))
    labels[-1] = "cut" if n % 2 else "hold"
    return [str(x) for x in labels]


def _brute_recipe(n, fps_in, fps_out, labels, mode):
    """``(a, b, t)`` of every output frame, one at a time, straight from the module doc."""
    ratio = Fraction(fps_in).limit_denominator(10000) / Fraction(fps_out).limit_denominator(10000)
    anchors = [0] + [j + 1 for j, lab in enumerate(labels) if lab != "hold"]
    out, k = [], 0
    while k * ratio <= n - 1:
        p = k * ratio
        i = math.floor(p)
        phi = p - i
        nearer = i if phi < Fraction(1, 2) else i + 1
        if phi != 0 and labels[i] == "cut":
            out.append((nearer, nearer, 0))
        elif mode == "smooth":
            a = max(x for x in anchors if x <= p)
            later = [x for x in anchors if x > a]
            if p == a or not later or labels[later[0] - 1] == "cut":
                out.append((a, a, 0))
            else:
                out.append((a, later[0], (p - a) / (later[0] - a)))
        elif phi == 0:
            out.append((i, i, 0))
        elif labels[i] == "hold":
            out.append((nearer, nearer, 0))
        else:
            out.append((i, i + 1, phi))
        k += 1
    return out


class RecordingBlend(LinearBlend):
    """LinearBlend that records which output slots each call was asked to fill."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def interpolate(self, a, b, ts, out=None):
        with self.lock:
            self.calls.append(len(ts))
        return super().interpolate(a, b, ts, out=out)


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("mode", ["keep_holds", "smooth"])
@pytest.mark.parametrize("fps_in,fps_out", RATES)
@pytest.mark.parametrize("n", LENGTHS)
def test_every_output_frame_matches_the_unbatched_recipe(n, fps_in, fps_out, mode, workers):
    frames, labels = _frames(n), _labels(n)
    ip, progress = RecordingBlend(), []
    out, steps = retime(frames, fps_in, fps_out, labels, mode=mode, interpolator=ip, workers=workers,
                        progress=lambda d, t: progress.append((d, t)))
    recipe = _brute_recipe(n, fps_in, fps_out, labels, mode)
    assert len(steps) == len(recipe) == output_count(n, fps_in, fps_out) == out.shape[0]
    assert [s.k for s in steps] == list(range(len(steps)))
    src = frames.numpy()
    for k, (a, b, t) in enumerate(recipe):
        s = steps[k]
        assert (s.a, s.b, s.t) == (a, b, t), (k, s)
        if t == 0:
            expected = src[a]
        else:
            expected = np.clip(LinearBlend().interpolate(src[a], src[b], [float(t)])[0], 0.0, 1.0)
        assert np.isfinite(out[k].numpy()).all()
        assert np.array_equal(out[k].numpy(), expected), f"output {k} of {len(recipe)} ({a}->{b} at {t})"
    # Each interpolated output was asked for exactly once (no job repeated or split away).
    assert sum(ip.calls) == sum(1 for _, _, t in recipe if t != 0)
    assert progress and progress[-1] == (len(recipe), len(recipe))
    assert all(b[0] >= a[0] for a, b in zip(progress, progress[1:]))


@pytest.mark.parametrize("n", [17, 33, 49, 81, 121])
def test_wan_lengths_end_on_the_last_source_frame(n):
    """16 -> 24 and 16 -> 32 from 4n+1 frames: the last output is an exact copy of the last frame."""
    frames = _frames(n)
    for fps_out in (24.0, 32.0):
        out, steps = retime(frames, 16.0, fps_out, ["motion"] * (n - 1), interpolator=LinearBlend(), workers=2)
        assert steps[-1].position == n - 1 and steps[-1].is_copy
        assert torch.equal(out[-1], frames[-1]) and torch.equal(out[0], frames[0])
