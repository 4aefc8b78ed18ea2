"""Nodes that allocate their output from widget values refuse, before allocating, an output
over their memory budget (``memory_budget_mb``, else 80% of the free memory), naming the
size and the budget; within it they run as before."""

from __future__ import annotations

import tracemalloc

import pytest
import torch

from anime_pipeline.core.errors import InputError
from anime_pipeline.nodes import _budget
from anime_pipeline.nodes.image import TriptychSplit
from anime_pipeline.nodes.motion import AnimeRetime
from anime_pipeline.nodes.video import HeldFramePush

PUSH = dict(duration_s=2.0, fps=10.0, zoom_start=1.0, zoom_end=1.1, center_x_start=0.5, center_y_start=0.5,
            center_x_end=0.5, center_y_end=0.5, easing="linear", sampling="bilinear")


def _still(h=32, w=48):
    return torch.rand(1, h, w, 3)


def test_push_over_its_budget_is_refused_before_allocating():
    tracemalloc.start()
    with pytest.raises(InputError) as err:
        HeldFramePush().push(_still(), width=4096, height=4096, memory_budget_mb=64, **PUSH)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    msg = str(err.value)
    # 20 frames of 4096x4096x3 float32 = 3.75 GiB, named with the 64 MiB budget
    assert msg.startswith("AP_HeldFramePush.width: 20 frames of 4096x4096 need 3.75 GiB") and "0.06 GiB" in msg \
        and "memory_budget_mb = 64" in msg
    assert peak < 16 * 1024**2
    frames, _ = HeldFramePush().push(_still(), width=64, height=48, memory_budget_mb=64, **PUSH)
    assert frames.shape == (20, 48, 64, 3)


def test_push_default_budget_is_a_share_of_the_free_memory(monkeypatch):
    monkeypatch.setattr(_budget, "budget", lambda mb, device=None: (10 * 1024**2, "80% of the 0.01 GiB free on cpu"))
    monkeypatch.setattr("anime_pipeline.nodes.video.budget", _budget.budget)
    with pytest.raises(InputError, match=r"over the 0\.01 GiB budget \(80% of the 0\.01 GiB free on cpu\)"):
        HeldFramePush().push(_still(), width=1024, height=1024, **PUSH)


def test_budget_without_a_value_reads_the_free_memory():
    limit, source = _budget.budget(0)
    assert limit > 0 and source.startswith("80% of the ") and "free on cpu" in source
    assert _budget.budget(5) == (5 * 1024**2, "memory_budget_mb = 5")


def test_triptych_target_over_its_budget_is_refused():
    strip = torch.rand(1, 64, 192, 3)
    with pytest.raises(InputError) as err:
        TriptychSplit().split(strip, "thirds", target_width=8192, target_height=8192, memory_budget_mb=100)
    assert str(err.value).startswith("AP_TriptychSplit.target_width: 1 strip(s) of three 8192x8192 panels") \
        and "need 4.50 GiB" in str(err.value) and "memory_budget_mb = 100" in str(err.value)
    first, *_ = TriptychSplit().split(strip, "thirds", target_width=64, target_height=64, memory_budget_mb=100)
    assert first.shape == (1, 64, 64, 3)


def test_retime_output_over_its_budget_is_refused():
    frames = torch.rand(4, 256, 256, 3)
    with pytest.raises(InputError) as err:
        AnimeRetime().retime(frames, 1.0, 1000.0, "smooth", memory_budget_mb=50)
    # 3 x 1000 + 1 output frames and the 4 inputs, 256x256x3 float32
    assert str(err.value).startswith("AP_AnimeRetime.fps_out: 3001 output frames of 256x256 (and the 4 input frames)")
    out, fps, _ = AnimeRetime().retime(frames, 16.0, 24.0, "smooth", memory_budget_mb=50)
    assert out.shape[0] == 5 and fps == 24.0


@pytest.mark.parametrize("cls", [HeldFramePush, TriptychSplit, AnimeRetime])
def test_the_budget_is_the_last_optional_input_and_a_socket(cls):
    """Added last and as a socket: saved UI workflows keep their widget values."""
    optional = cls.INPUT_TYPES().get("optional", {})
    name, (kind, opts) = list(optional.items())[-1]
    assert name == "memory_budget_mb" and kind == "INT" and opts["forceInput"] and opts["default"] == 0
