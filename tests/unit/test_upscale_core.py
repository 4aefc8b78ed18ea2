"""core/upscale.py without ComfyUI: the up-front refusals (output budget, device memory,
frames below the model's minimum), batch sizing, out-of-memory retries that keep the result,
NaN output, and the exact target size. The comparisons with ComfyUI's own tiled_scale and
ImageUpscaleWithModel are in tests/integration/test_enhance_graphs.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.upscale import GIB, UpscaleError, plan_upscale, upscale_frames
from devkit.synthetic_clips import random_frames

FREE = 64 * GIB


def single_tile(samples, function, **kw):
    """Stands in for comfy.utils.tiled_scale on frames that fit one tile."""
    kw["pbar"].update(1)
    return function(samples)


class Nearest:
    """x2 nearest-neighbour 'model' that records the batch sizes it was called with and can fail."""

    def __init__(self, max_batch=10**6, nan=False):
        self.batches, self.max_batch, self.nan = [], max_batch, nan

    def __call__(self, x):
        if x.shape[0] > self.max_batch:
            raise torch.OutOfMemoryError("injected")
        self.batches.append(x.shape[0])
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        return y * float("nan") if self.nan else y


def _plan(frames, **kw):
    args = dict(free_device_bytes=FREE, model_bytes=0, budget_bytes=FREE)
    return plan_upscale(tuple(frames.shape), 2, **{**args, **kw})


def test_output_over_the_budget_is_refused_with_the_sizes():
    with pytest.raises(InputError) as err:
        plan_upscale((500, 720, 1280, 3), 4, target_width=3840, target_height=2160, free_device_bytes=FREE,
                     model_bytes=0, budget_bytes=8 * GIB, node="AP_UpscaleVideo")
    msg = str(err.value)
    assert msg.startswith("AP_UpscaleVideo.images: 500 frames of 3840x2160 (via 5120x2880 at x4) need")
    assert "more than the 8.00 GiB budget" in msg


def test_a_device_without_room_for_one_smallest_tile_is_refused():
    with pytest.raises(InputError, match=r"the device has 0.10 GiB free, but the model \(0.09 GiB\) and one 128 px"):
        plan_upscale((4, 720, 1280, 3), 4, free_device_bytes=GIB // 10, model_bytes=GIB // 11, budget_bytes=FREE)


def test_frames_below_the_models_minimum_and_bad_overlap_are_refused():
    with pytest.raises(InputError, match="frames are 16x8, smaller than the 32 px the model accepts"):
        _plan(torch.zeros(1, 8, 16, 3), min_size=32)
    with pytest.raises(InputError, match="overlap: must be >= 0 and less than half the tile"):
        _plan(torch.zeros(1, 8, 16, 3), tile=128, overlap=64)


def test_batch_is_sized_from_free_memory():
    per_frame = 128 * 128 * 3 * 4 * 2 * 384  # core's estimate for one 128 px frame at x2, fp32
    plan = plan_upscale((50, 128, 128, 3), 2, free_device_bytes=3 * per_frame + 1000, model_bytes=1000,
                        budget_bytes=FREE)
    assert plan.batch == 3
    assert _plan(torch.zeros(5, 128, 128, 3)).batch == 5  # never more than the clip
    assert _plan(torch.zeros(5, 128, 128, 3), batch=2).batch == 2


def test_out_of_memory_halves_the_batch_and_keeps_the_result():
    frames = random_frames(7, 16, 24)
    ref, _ = upscale_frames(frames, Nearest(), _plan(frames, batch=7), tiler=single_tile)
    assert torch.equal(ref, frames.repeat_interleave(2, 1).repeat_interleave(2, 2))
    model, ticks = Nearest(max_batch=2), []
    out, report = upscale_frames(frames, model, _plan(frames, batch=7), tiler=single_tile,
                                 progress=lambda d, t: ticks.append((d, t)))
    assert torch.equal(out, ref)
    assert report["batch_used"] == 1 and report["oom_retries"] == 2 and model.batches == [1] * 7  # 7 -> 3 -> 1
    assert ticks[-1] == (7, 7)


def test_out_of_memory_at_one_frame_and_the_smallest_tile_is_an_error():
    frames = random_frames(2, 16, 24)
    with pytest.raises(UpscaleError, match="out of device memory even with one frame per batch and 128 px tiles"):
        upscale_frames(frames, Nearest(max_batch=0), _plan(frames, tile=128), tiler=single_tile)


def test_nan_output_names_the_frames():
    frames = random_frames(3, 16, 24)
    with pytest.raises(UpscaleError, match=r"NaN or inf pixels for frame\(s\) \[0, 1, 2\]"):
        upscale_frames(frames, Nearest(nan=True), _plan(frames), tiler=single_tile, node="AP_UpscaleVideo")


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_exact_target_size(fit):
    frames = random_frames(2, 16, 24)
    plan = _plan(frames, target_width=40, target_height=40)
    out, report = upscale_frames(frames, Nearest(), plan, tiler=single_tile, fit=fit)
    assert out.shape == (2, 40, 40, 3) and report["size_out"] == [40, 40] and report["size_model"] == [48, 32]
    assert out.min() >= 0 and out.max() <= 1
