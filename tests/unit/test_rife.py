"""RIFE v4 (core/rife.py): checkpoints in the real key layouts load, wrong ones are refused
with the mismatches listed, and the learned retime calls the model only on motion intervals
at the exact phases while holds and cuts stay exact copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.retime import plan, retime
from anime_pipeline.core.rife import LAYOUTS, RifeFormatError, RifeInterpolator, detect_layout, load_ifnet
from devkit.harness import tiny_enhance_models as tm
from devkit.synthetic_clips import random_frames


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def state(request):
    return request.param, tm.random_state(tm.rife_shapes(request.param), seed=5, gain=0.5)


def test_both_layouts_load_with_or_without_the_module_prefix(state):
    layout, sd = state
    assert detect_layout(sd) == layout
    net = load_ifnet(sd)
    assert net.layout == layout and not any(p.requires_grad for p in net.parameters())
    assert torch.equal(net.state_dict()["block3.lastconv.0.weight"], sd["block3.lastconv.0.weight"])
    prefixed = load_ifnet({"module." + k: v for k, v in sd.items()})
    assert torch.equal(prefixed.state_dict()["block0.conv0.0.0.weight"], sd["block0.conv0.0.0.weight"])


def test_the_saved_files_have_the_published_names(tmp_path):
    path = tm.write_rife(tmp_path / "rife49.pth", "4.7")
    sd = torch.load(path, weights_only=True)
    assert sd["encode.1.weight"].shape == (16, 4, 4, 4) and sd["block0.conv0.0.0.weight"].shape == (96, 15, 3, 3)
    assert load_ifnet(sd).layout == "4.7"


def test_wrong_shapes_and_missing_keys_are_listed_before_loading(state):
    layout, sd = state
    bad = dict(sd)
    bad["block2.lastconv.0.weight"] = torch.zeros(96, 20, 4, 4)  # the v4.5 head
    del bad["block1.convblock.3.beta"]
    bad["block9.extra"] = torch.zeros(1)
    with pytest.raises(RifeFormatError) as err:
        load_ifnet(bad, name="rife45.pth")
    msg = str(err.value)
    assert msg.startswith("rife45.pth: keys or shapes do not match")
    assert "missing block1.convblock.3.beta [1, 128, 1, 1]" in msg and "unexpected block9.extra" in msg
    assert "block2.lastconv.0.weight: expected [96, 24, 4, 4], got [96, 20, 4, 4]" in msg


def test_a_checkpoint_of_another_model_is_refused():
    with pytest.raises(RifeFormatError, match="not a RIFE v4 checkpoint.*supported: RIFE v4.6, RIFE v4.7-v4.9"):
        load_ifnet(tm.random_state(tm.compact_shapes(), seed=1))
    with pytest.raises(RifeFormatError, match="not a state dict"):
        load_ifnet({"a": 1})


def test_any_phase_in_one_batch_equals_phase_by_phase(state):
    layout, sd = state
    rife = RifeInterpolator(load_ifnet(sd))
    a, b = (f.numpy() for f in random_frames(2, 40, 70))
    ts = [0.2, 1 / 3, 0.5, 0.9]
    together = rife.interpolate(a, b, ts)
    assert together.shape == (4, 40, 70, 3) and together.min() >= 0 and together.max() <= 1
    for k, t in enumerate(ts):
        np.testing.assert_allclose(rife.interpolate(a, b, [t])[0], together[k], atol=1e-5)
    assert not np.allclose(together[0], together[3])
    with pytest.raises(ValueError, match=r"phases must be in \(0, 1\)"):
        rife.interpolate(a, b, [1.0])


class Counting(RifeInterpolator):
    """Records the source frames and phases of every call, and counts the net's forward passes."""

    def __init__(self, net, src):
        super().__init__(net)
        self.src, self.calls, self.forwards = src, [], 0
        net.register_forward_hook(lambda *_: setattr(self, "forwards", self.forwards + 1))

    def interpolate(self, a, b, ts, out=None):
        ia = next(i for i, f in enumerate(self.src) if np.array_equal(f, a))
        ib = next(i for i, f in enumerate(self.src) if np.array_equal(f, b))
        self.calls.append((ia, ib, [round(float(t), 6) for t in ts]))
        return super().interpolate(a, b, ts, out)


@pytest.mark.parametrize("fps_in,fps_out", [(16, 24), (12, 30)])
def test_learned_retime_calls_the_model_only_on_motion_and_copies_holds_and_cuts(fps_in, fps_out):
    labels = ("hold", "motion", "cut", "motion", "hold", "hold", "motion", "cut", "motion")
    frames = random_frames(len(labels) + 1, 32, 48)
    counting = Counting(load_ifnet(tm.random_state(tm.rife_shapes("4.7"), seed=7, gain=0.5)), frames.numpy())
    out, steps = retime(frames, fps_in, fps_out, labels, interpolator=counting, workers=4)
    expected = {}
    for s in steps:
        if s.is_copy:
            assert torch.equal(out[s.k], frames[s.a]), f"output {s.k} is not an exact copy of frame {s.a}"
        else:
            assert labels[s.a] == "motion" and s.b == s.a + 1
            expected.setdefault((s.a, s.b), []).append(round(float(s.t), 6))
    assert sorted((a, b, ts) for (a, b), ts in expected.items()) == sorted(counting.calls)
    assert counting.forwards == len(expected) > 0  # one forward per motion pair (<= 8 phases each)
    assert all(labels[a] == "motion" for a, _, _ in counting.calls)
    assert steps == plan(len(frames), fps_in, fps_out, labels)


def test_nan_output_is_an_error_naming_the_model():
    sd = tm.random_state(tm.rife_shapes("4.6"), seed=9)
    sd["block3.lastconv.0.bias"] = torch.full_like(sd["block3.lastconv.0.bias"], float("nan"))
    rife = RifeInterpolator(load_ifnet(sd), label="RIFE v4.6 (broken.pth)")
    a, b = (f.numpy() for f in random_frames(2, 16, 16))
    with pytest.raises(ValueError, match=r"RIFE v4.6 \(broken.pth\): the interpolation model produced NaN"):
        rife.interpolate(a, b, [0.5])
