"""core.interpolate: the Interpolator contract, linear blend, and the DIS-flow interpolator
placing moving content where it really is at phase t."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anime_pipeline.core.interpolate import (
    FlowInterpolator,
    Interpolator,
    LinearBlend,
    linear_intermediate_flows,
    splat_intermediate_flows,
)

H, W, STEP = 96, 128, 6  # the scene moves STEP px right per frame


def _scene(x0: int) -> np.ndarray:
    """A cel-like frame: flat background, outlined shapes, a soft texture; shifted left by x0 px."""
    rng = np.random.default_rng(5)
    big = np.zeros((H, W + 60, 3), np.float32)
    big[:] = (0.85, 0.8, 0.7)
    big += cv2.GaussianBlur(rng.normal(0, 0.08, big.shape).astype(np.float32), (0, 0), 6)
    for cx, cy, r, col in [(40, 40, 18, (0.9, 0.3, 0.2)), (100, 60, 22, (0.2, 0.4, 0.9)), (150, 30, 14, (0.3, 0.8, 0.3))]:
        cv2.circle(big, (cx, cy), r, col, -1, lineType=cv2.LINE_AA)
        cv2.circle(big, (cx, cy), r, (0.05, 0.05, 0.05), 2, lineType=cv2.LINE_AA)
    return np.ascontiguousarray(np.clip(big[:, x0 : x0 + W], 0, 1))


def _psnr(a, b, margin=12):
    d = (a - b)[:, margin:-margin]
    return 10 * np.log10(1.0 / max(float(np.mean(d * d)), 1e-12))


def test_implementations_satisfy_the_protocol():
    assert isinstance(FlowInterpolator(), Interpolator)
    assert isinstance(LinearBlend(), Interpolator)


def test_linear_blend_values():
    a, b = np.zeros((2, 3, 3), np.float32), np.ones((2, 3, 3), np.float32)
    out = LinearBlend().interpolate(a, b, [0.25, 0.5])
    assert out.shape == (2, 2, 3, 3) and np.allclose(out[0], 0.25) and np.allclose(out[1], 0.5)


@pytest.mark.parametrize("t", [0.5, 1 / 3, 2 / 3])
def test_flow_puts_moving_content_at_phase_t(t):
    a, b = _scene(0), _scene(STEP)
    truth = _scene(round(STEP * t))
    flow = FlowInterpolator().interpolate(a, b, [t])[0]
    blend = LinearBlend().interpolate(a, b, [t])[0]
    assert flow.shape == a.shape and flow.dtype == np.float32
    assert _psnr(flow, truth) > 38.0
    assert _psnr(flow, truth) > _psnr(blend, truth) + 15.0


def test_several_phases_in_one_call_match_single_calls_and_fill_out():
    a, b = _scene(0), _scene(STEP)
    ip = FlowInterpolator()
    out = np.full((2, H, W, 3), -1, np.float32)
    res = ip.interpolate(a, b, [1 / 3, 2 / 3], out=out)
    assert res is out and (out >= 0).all()
    assert np.array_equal(out[1], ip.interpolate(a, b, [2 / 3])[0])


@pytest.mark.parametrize("options", [
    {"occlusion_px": 2.0}, {"line_guard": 0.25}, {"preset": "ultrafast", "flow_size": 64}, {"intermediate": "splat"},
    {"extra_flow_sizes": ()}, {"extra_flow_sizes": (64, 96)}, {"preset": "fast", "flow_size": 640, "finest_scale": None},
    {"patch_stride": 3, "refine_iters": 2},
])
def test_options_give_valid_frames(options):
    a, b = _scene(0), _scene(STEP)
    out = FlowInterpolator(**options).interpolate(a, b, [0.5])[0]
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert _psnr(out, _scene(STEP // 2)) > 35.0


def test_bad_arguments():
    a = _scene(0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        FlowInterpolator().interpolate(a, a, [0.0])
    with pytest.raises(ValueError, match="out must be"):
        LinearBlend().interpolate(a, a, [0.5], out=np.empty((2, H, W, 3), np.float32))
    with pytest.raises(ValueError, match="preset"):
        FlowInterpolator(preset="slow")
    with pytest.raises(ValueError, match="intermediate"):
        FlowInterpolator(intermediate="cubic")


def _object_flows(n=48, x0=10, size=10, v=8.0):
    """A ``size``-px object at ``x0`` in frame 0 moving ``v`` px right over a static background."""
    f01 = np.zeros((n, n, 2), np.float32)
    f10 = np.zeros((n, n, 2), np.float32)
    f01[10:30, x0 : x0 + size, 0] = v
    f10[10:30, x0 + int(v) : x0 + int(v) + size, 0] = -v
    return f01, f10


@pytest.mark.parametrize("t", [0.5, 1 / 3, 0.75])
def test_linear_intermediate_flows_of_a_uniform_translation(t):
    f01 = np.full((8, 9, 2), (4.0, -2.0), np.float32)
    ft0, ft1 = linear_intermediate_flows(f01, -f01, t)
    assert np.allclose(ft0, -t * f01, atol=1e-5) and np.allclose(ft1, (1 - t) * f01, atol=1e-5)


@pytest.mark.parametrize("t", [0.5, 1 / 3, 0.75])
def test_splat_intermediate_flows_of_a_uniform_translation(t):
    f01 = np.full((24, 32, 2), (4.0, -2.0), np.float32)
    ft0, ft1 = splat_intermediate_flows(f01, -f01, t)
    inner = (slice(4, -4), slice(6, -6))  # away from the borders the splats leave empty
    assert ft0.dtype == np.float32 and ft0.shape == f01.shape
    assert np.allclose(ft0[inner], -t * f01[inner], atol=1e-4)
    assert np.allclose(ft1[inner], (1 - t) * f01[inner], atol=1e-4)


def test_splat_puts_an_object_velocity_where_the_object_is_at_t():
    f01, f10 = _object_flows()
    ft0, ft1 = splat_intermediate_flows(f01, f10, 0.5)
    lin0, _ = linear_intermediate_flows(f01, f10, 0.5)
    # At t = 0.5 the object covers x in [14, 24): every pixel there moves with it.
    assert np.allclose(ft0[12:28, 15:23, 0], -4.0, atol=0.05)
    assert np.allclose(ft1[12:28, 15:23, 0], 4.0, atol=0.05)
    # The linear approximation samples the flows at the pixel itself, so it is off at the edges.
    assert abs(lin0[20, 22, 0] + 4.0) > 1.0
    # The static background far from the object stays still.
    assert np.allclose(ft0[:, 35:], 0.0, atol=1e-4) and np.allclose(ft0[35:], 0.0, atol=1e-4)


def test_ensemble_of_flow_sizes_averages_the_estimates():
    """Two flow sizes give the mean of the two single-size syntheses (up to 8-bit rounding)."""
    a, b = _scene(0), _scene(STEP)
    both = FlowInterpolator(flow_size=128, extra_flow_sizes=(64,)).interpolate(a, b, [0.5])[0]
    one = FlowInterpolator(flow_size=128, extra_flow_sizes=()).interpolate(a, b, [0.5])[0]
    two = FlowInterpolator(flow_size=64, extra_flow_sizes=()).interpolate(a, b, [0.5])[0]
    assert np.abs(both - (one + two) / 2).max() <= 1.5 / 255
    assert _psnr(both, _scene(STEP // 2)) > 38.0
