"""core.flow: DIS flow direction/scale, backward warp, consistency and warping error."""

import cv2
import numpy as np
import pytest

from anime_pipeline.core import flow


def _texture(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h + 40, w + 40)).astype(np.float32), (0, 0), 3)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)


def _shifted(big, dx, dy, h=96, w=128):
    return big[20 + dy : 20 + dy + h, 20 + dx : 20 + dx + w]


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_flow_recovers_known_translation(scale):
    big = _texture()
    a, b = _shifted(big, 0, 0), _shifted(big, 3, -2)
    # b[y, x] = big[y+20-2, x+20+3] = a[y-2, x+3]  ->  a[y, x] = b[y+2, x-3]
    f = flow.compute_flow(a, b, scale=scale)
    assert f.shape == (96, 128, 2) and f.dtype == np.float32
    inner = f[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(2.0, abs=0.3)


def test_warp_brings_b_onto_a_and_consistency_is_small():
    big = _texture(seed=1)
    a, b = _shifted(big, 0, 0), _shifted(big, 2, 1)
    fab, fba = flow.compute_flow(a, b), flow.compute_flow(b, a)
    warped = flow.warp(b, fab)
    assert warped.shape == a.shape and warped.dtype == np.uint8
    inner = (slice(8, -8), slice(8, -8))
    before = np.abs(a.astype(float) - b)[inner].mean()
    after = np.abs(a.astype(float) - warped)[inner].mean()
    assert after < before / 4
    assert np.median(flow.consistency_error(fab, fba)) < 0.3


def test_warping_error_small_for_motion_large_for_unrelated_frames():
    big = _texture(seed=2)
    a, b = _shifted(big, 0, 0), _shifted(big, 4, 0)
    other = _shifted(_texture(seed=3), 0, 0)
    moving = flow.warping_error(a, b)
    unrelated = flow.warping_error(a, other)
    assert 0 <= moving < 0.01
    assert unrelated > 5 * moving


def test_bad_arguments_raise_clear_errors():
    a = _texture()[:96, :128]
    with pytest.raises(ValueError, match="preset"):
        flow.compute_flow(a, a, preset="slow")
    with pytest.raises(ValueError, match="scale"):
        flow.compute_flow(a, a, scale=0)
    with pytest.raises(ValueError, match="one size"):
        flow.compute_flow(a, a[:50])
    tiny = np.zeros((5, 6), np.uint8)
    assert not flow.compute_flow(tiny, tiny).any()


@pytest.mark.parametrize("opts", [{"finest_scale": 0, "patch_stride": 2}, {"finest_scale": 1, "refine_iters": 0},
                                  {"patch_stride": 3, "refine_iters": 8}])
def test_dis_flow_options_recover_known_translation(opts):
    big = _texture()
    a, b = (cv2.cvtColor(_shifted(big, *d), cv2.COLOR_RGB2GRAY) for d in ((0, 0), (3, -2)))
    f = flow.dis_flow(a, b, "ultrafast", **opts)
    inner = f[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(2.0, abs=0.3)


def test_sampling_map_of_a_smaller_flow_rescales_vectors():
    small = np.full((12, 16, 2), (1.5, -0.5), np.float32)
    m = flow.sampling_map(small, 48, 64)  # 4x on both axes
    grid = flow.pixel_grid(48, 64)
    assert m.shape == (48, 64, 2) and np.allclose(m - grid, (6.0, -2.0), atol=1e-5)
    m = flow.sampling_map(small, 24, 64)  # 2x / 4x
    assert np.allclose(m - flow.pixel_grid(24, 64), (6.0, -1.0), atol=1e-5)
    assert np.array_equal(grid[5, 7], (7.0, 5.0))


def test_dis_instances_are_cached_per_thread_and_setting():
    import threading

    first = flow._dis_instance("ultrafast", 0, None, None)
    assert flow._dis_instance("ultrafast", 0, None, None) is first  # reused in this thread
    other = flow._dis_instance("ultrafast", 1, None, None)
    assert other is not first and other.getFinestScale() == 1 and first.getFinestScale() == 0
    assert flow._dis_instance("fast", None, 3, 2).getPatchStride() == 3
    seen = []
    worker = threading.Thread(target=lambda: seen.append(flow._dis_instance("ultrafast", 0, None, None)))
    worker.start()
    worker.join()
    assert seen[0] is not first  # an instance is not thread-safe: each thread has its own
