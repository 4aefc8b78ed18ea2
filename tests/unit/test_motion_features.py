"""The batched descriptors of core.motion_features equal their frame-by-frame definitions."""

import cv2
import numpy as np
import pytest

from anime_pipeline.core import motion_features as mf


def _clip(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Frames that differ strongly from each other (any leak between stacked frames shows)."""
    rng = np.random.default_rng(seed)
    base = np.stack([cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
                     for _ in range(n)])
    ramps = np.linspace(0, 255, n)[:, None, None, None]  # a different brightness per frame
    return np.clip(0.5 * base + 0.5 * ramps, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(720, 1280), (240, 320), (101, 333), (9, 700), (17, 17)])
def test_run_descriptors_match_frame_by_frame(shape):
    frames = _clip(7, *shape)
    th, tw = mf.analysis_size(*shape)
    ws = mf.acquire(9, th, tw)
    try:
        assert mf.describe_run(iter(frames), ws) == 7
        for j, frame in enumerate(frames):
            thumb = mf.thumbnail(frame)
            assert np.array_equal(ws.thumbs[j], thumb)
            y = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            np.testing.assert_allclose(ws.hp[j], mf.highpass(np.ascontiguousarray(mf.block_crop(y))), atol=1e-4)
            half = cv2.resize(thumb, ((tw + 1) // 2, (th + 1) // 2), interpolation=cv2.INTER_AREA)
            yuv = cv2.cvtColor(half, cv2.COLOR_RGB2YUV)
            for c in range(3):
                hist = np.bincount(yuv[..., c].ravel() // (256 // mf.HIST_BINS), minlength=mf.HIST_BINS)
                np.testing.assert_allclose(ws.cdf[j, c], np.cumsum(hist) / hist.sum(), atol=1e-6)
        detail, shift = mf.detail_changes(ws, 7), mf.color_shifts(ws, 7)
        for j in range(6):
            blocks = mf.block_means(np.abs(ws.hp[j + 1] - ws.hp[j]))
            assert detail[j] == pytest.approx(blocks.max(), abs=1e-4)
            emd = np.abs(ws.cdf[j + 1] - ws.cdf[j]).sum(axis=1).mean() * 256 / mf.HIST_BINS
            assert shift[j] == pytest.approx(emd, abs=1e-4)
        assert shift.min() > 1.0  # the frames really differ: the checks above are not vacuous
    finally:
        mf.release(ws)


@pytest.mark.parametrize("shape", [(720, 1280), (480, 832), (1080, 1920)])
def test_large_frames_are_read_one_row_per_band(shape):
    frame = _clip(1, *shape)[0]
    th, tw = mf.analysis_size(*shape)
    step = shape[0] // th
    middle = np.zeros(shape[0], bool)
    middle[(step - 1) // 2 :: step] = True
    thumb = mf.thumbnail(frame)
    assert thumb.shape == (th, tw, 3)
    other = frame.copy()
    other[~middle] = 255 - other[~middle]  # every row outside the band middles changes
    assert np.array_equal(mf.thumbnail(other), thumb)
    other = frame.copy()
    other[middle] = 255 - other[middle]
    assert np.abs(mf.thumbnail(other).astype(int) - thumb).mean() > 20
    # bilinear horizontally: two neighbouring source pixels per thumbnail pixel at 8x
    if shape == (720, 1280):
        pair = frame[3::8].reshape(90, 160, 8, 3)[:, :, 3:5].astype(float).mean(axis=2)
        assert np.abs(thumb - pair).max() <= 1


@pytest.mark.parametrize("shape", [(240, 320), (720, 1280)])
def test_float_frames_give_the_uint8_thumbnail(shape):
    frames = _clip(2, *shape)
    as_float = frames.astype(np.float32) / 255.0
    for f8, f32 in zip(frames, as_float):
        assert np.abs(mf.thumbnail(f32).astype(int) - mf.thumbnail(f8)).max() <= 1


def test_run_rejects_too_many_or_mixed_frames():
    ws = mf.acquire(2, 90, 160)
    with pytest.raises(ValueError, match="more than 2 frames"):
        mf.describe_run(iter(_clip(3, 720, 1280)), ws)
    with pytest.raises(ValueError, match="frame 1 is"):
        mf.describe_run([_clip(1, 720, 1280)[0], _clip(1, 240, 320)[0]], ws)


def test_workspaces_are_reused_and_bounded():
    ws = mf.acquire(5, 30, 40)
    mf.release(ws)
    assert mf.acquire(5, 30, 40) is ws
    for side in range(8, 48, 8):  # more shapes than are kept
        mf.release(mf.acquire(5, side, side))
    assert len(mf._FREE) <= 3
