"""Interpolators fill several phases per call (the retimer sends every output between one
source pair at once, straight into a slice of its output). Each slot of a multi-phase call
must hold exactly the frame a one-phase call gives, for 1 to 5 phases, first and last slot
included, with and without ``out``."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.core.interpolate import FlowInterpolator, LinearBlend

H, W = 32, 48


def _pair():
    rng = np.random.default_rng(3)
    big = rng.uniform(0, 1, (H, W + 4, 3)).astype(np.float32)
    return np.ascontiguousarray(big[:, :W]), np.ascontiguousarray(big[:, 3:W + 3])


PHASES = [[0.5], [1 / 3, 2 / 3], [0.25, 0.5, 0.75], [0.1, 0.2, 0.8, 0.9], [0.05, 1 / 3, 0.5, 2 / 3, 0.95]]
MAKERS = {
    "blend": LinearBlend,
    "flow": FlowInterpolator,
    "flow_occlusion": lambda: FlowInterpolator(occlusion_px=2.0),
    "flow_guard_splat": lambda: FlowInterpolator(line_guard=0.25, intermediate="splat"),
}


@pytest.mark.parametrize("maker", list(MAKERS))
@pytest.mark.parametrize("ts", PHASES, ids=len)
def test_each_slot_equals_a_single_phase_call(maker, ts):
    ip = MAKERS[maker]()
    a, b = _pair()
    out = np.full((len(ts) + 2, H, W, 3), -1.0, np.float32)  # guard slots either side
    res = ip.interpolate(a, b, ts, out=out[1:-1])
    assert res.shape == (len(ts), H, W, 3)
    assert (out[0] == -1).all() and (out[-1] == -1).all(), "wrote outside its slice"
    plain = ip.interpolate(a, b, ts)
    for k, t in enumerate(ts):
        single = ip.interpolate(a, b, [t])[0]
        assert np.isfinite(out[1 + k]).all()
        assert np.array_equal(out[1 + k], single), (k, t)
        assert np.array_equal(plain[k], single), (k, t)
