"""Held-frame push (core/push.py): exact continuous transform, frame count, errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.push import held_frame_push, inverse_matrix, render_push, trajectory


def detailed_still(h: int = 150, w: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.2)
    return (img - img.min()) / (img.max() - img.min())


def test_bilinear_frames_match_an_independent_warp():
    still = detailed_still()
    out_size = (160, 100)
    states = trajectory(4, (200, 150), out_size, 1.3, 1.7, (0.4, 0.45), (0.6, 0.55), "linear")
    frames = render_push(torch.from_numpy(still)[None], out_size, states, "bilinear").numpy()
    for frame, state in zip(frames, states):
        matrix = inverse_matrix(state, (200, 150), out_size)
        ref = cv2.warpAffine(still, matrix, out_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(frame - ref).max() < 1e-4


def test_bicubic_reproduces_a_quadratic_ramp_at_the_exact_positions():
    """Catmull-Rom reproduces quadratics: every output pixel must equal the ramp evaluated at
    the still position the transform assigns to it (fractional, never rounded)."""
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    def ramp(x, y):
        return 0.1 + 0.8 * ((x / w) ** 2 * 0.6 + (y / h) * 0.4)

    still = np.repeat(ramp(xx, yy)[..., None], 3, axis=2).astype(np.float32)
    out_size = (96, 64)
    states = trajectory(5, (w, h), out_size, 1.7, 2.3, (0.42, 0.47), (0.58, 0.53), "ease_in_out")
    frames = render_push(torch.from_numpy(still)[None], out_size, states, "bicubic").numpy()
    for frame, state in zip(frames, states):
        m = inverse_matrix(state, (w, h), out_size)
        v, u = np.mgrid[0:out_size[1], 0:out_size[0]].astype(np.float64)
        expected = ramp(m[0, 0] * u + m[0, 2], m[1, 1] * v + m[1, 2])
        assert np.abs(frame[..., 1] - expected).max() < 2e-5


def test_trajectory_endpoints_and_easing():
    kw = dict(still_size=(400, 300), out_size=(400, 300), zoom_start=1.2, zoom_end=1.8,
              center_start=(0.45, 0.5), center_end=(0.55, 0.5))
    lin = trajectory(11, easing="linear", **kw)
    ease = trajectory(11, easing="ease_in_out", **kw)
    for states in (lin, ease):
        assert states[0].zoom == pytest.approx(1.2) and states[-1].zoom == pytest.approx(1.8)
        assert states[0].cx == pytest.approx(0.45) and states[-1].cx == pytest.approx(0.55)
        assert states[5].zoom == pytest.approx(math.sqrt(1.2 * 1.8))  # geometric midpoint
    # linear: constant zoom ratio per frame; ease_in_out starts and ends slowly
    ratios = [b.zoom / a.zoom for a, b in zip(lin, lin[1:])]
    assert max(ratios) - min(ratios) < 1e-12
    assert ease[1].zoom - ease[0].zoom < (lin[1].zoom - lin[0].zoom) / 3  # t=0.1 -> 0.0245
    assert ease[1].cx - ease[0].cx == pytest.approx(0.1 * (1 - math.cos(math.pi / 10)) / 2)


def test_centre_is_clamped_to_keep_the_view_inside_the_still():
    # zoom 2 on a square still shows half of it: the centre must stay within 0.25..0.75
    states = trajectory(3, (100, 100), (100, 100), 2.0, 2.0, (0.0, 0.5), (1.0, 0.9), "linear")
    assert [round(s.cx, 6) for s in states] == [0.25, 0.5, 0.75]
    assert states[-1].cy == pytest.approx(0.75)


@pytest.mark.parametrize("sampling", ["bicubic", "bilinear"])
def test_slow_pan_moves_content_by_equal_sub_pixel_steps(sampling):
    """A pan of 0.3 output px per frame: an edge must advance by 0.3 px every frame (no
    1-pixel jitter). The edge position is measured from the mean intensity of each frame."""
    w, h = 400, 40
    still = np.zeros((h, w, 3), np.float32)
    still[:, : w // 2] = 1.0
    still = cv2.GaussianBlur(still, (0, 0), 2.0)
    n, out = 21, (100, 40)
    step_px = 0.3  # at zoom 1, cover = max(100/400, 40/40) = 1 -> still px = output px
    span = step_px * (n - 1) / w
    frames = held_frame_push(torch.from_numpy(still)[None], n / 24, 24, out[0], out[1], 1.0, 1.0,
                             (0.5 - span / 2, 0.5), (0.5 + span / 2, 0.5), "linear", sampling)
    # white area on the left shrinks as the view moves right: mean * width = edge position
    edge = frames[..., 0].mean(dim=(1, 2)).double() * out[0]
    steps = (edge[:-1] - edge[1:]).numpy()
    assert np.allclose(steps, step_px, atol=1e-3), steps


def test_output_size_may_differ_and_covers_the_frame():
    still = torch.from_numpy(detailed_still(168, 96))[None]  # 768x1344 keyframe, scaled down 8x
    frames = held_frame_push(still, 0.5, 24, 90, 160)
    assert frames.shape == (12, 160, 90, 3)
    assert frames[0, :, 0].max() > 0 and frames[0, 0].max() > 0  # no black edge at zoom 1


def test_zoom_below_one_shows_black_outside_the_still():
    still = torch.ones(1, 50, 50, 3)
    frames = held_frame_push(still, 1 / 24, 24, 0, 0, 0.5, 0.5)
    assert frames[0, :12, :12].max() == 0 and frames[0, 14:36, 14:36].min() == 1


def test_reductions_are_antialiased():
    checker = (np.indices((256, 256)).sum(axis=0) % 2).astype(np.float32)
    still = torch.from_numpy(np.repeat(checker[..., None], 3, axis=2))[None]
    frames = held_frame_push(still, 1 / 24, 24, 128, 128, 1.0, 1.0, sampling="bilinear")
    # a 1-px checkerboard halved must come out flat grey, not as a moire or as black/white
    assert abs(frames.mean().item() - 0.5) < 0.02 and frames.std().item() < 0.05


def test_frame_count_is_duration_times_fps_rounded():
    still = torch.rand(1, 20, 20, 3)
    assert held_frame_push(still, 2.5, 24).shape[0] == 60
    assert held_frame_push(still, 1.03, 24).shape[0] == 25  # 24.72
    assert held_frame_push(still, 1 / 48, 24).shape[0] == 1  # 0.5 rounds up


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"zoom_start": 0.0}, "zoom_start: must be a finite number > 0"),
        ({"zoom_end": -1.0}, "zoom_end: must be a finite number > 0"),
        ({"zoom_end": float("nan")}, "zoom_end"),
        ({"center_start": (float("nan"), 0.5)}, "center_x_start"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": 0.01}, "duration_s: .*rounds to 0 frames"),
        ({"fps": 0.0}, "fps"),
        ({"easing": "bounce"}, "easing"),
        ({"sampling": "nearest"}, "sampling"),
        ({"width": -4}, "width"),
        ({"image": torch.rand(2, 20, 20, 3)}, "image: expects one still, got a batch of 2"),
        ({"image": torch.full((1, 20, 20, 3), float("nan"))}, "image: NaN"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, pattern):
    args = {"image": torch.rand(1, 20, 20, 3), "duration_s": 1.0, "fps": 24.0, **kwargs}
    with pytest.raises(InputError, match=pattern):
        held_frame_push(**args, node="AP_HeldFramePush")


def test_node_returns_frames_and_fps():
    from anime_pipeline.nodes.video import HeldFramePush

    frames, fps = HeldFramePush().push(torch.rand(1, 32, 48, 3), 0.5, 30.0, 40, 24, 1.0, 1.2, 0.5, 0.5, 0.6, 0.4,
                                       "linear", "bilinear")
    assert frames.shape == (15, 24, 40, 3) and fps == 30.0 and isinstance(fps, float)
