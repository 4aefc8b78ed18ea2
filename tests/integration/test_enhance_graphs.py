"""Learned upscaling and interpolation inside a real ComfyUI on CPU, with tiny random-weight
models written at test time in the real files' key layouts (devkit/harness/tiny_enhance_models.py):

* core ``UpscaleModelLoader`` (spandrel) accepts the Compact x2 and RRDB x4 files;
  ``AP_UpscaleVideo`` equals core ``ImageUpscaleWithModel`` on frames that fit one tile and
  ``comfy.utils.tiled_scale`` (run by a test node at the same tile and overlap) on frames that
  do not (max |diff| <= 1e-5), with several frames per model call;
* an injected out-of-memory error (a test node wraps the model) is retried with fewer frames,
  then smaller tiles, and the result equals tiled_scale at the tile finally used;
* an output over the budget is refused before any work, naming the sizes;
* ``AP_LoadInterpolator`` loads a RIFE v4.6 and a v4.9-layout file from models/interpolation;
  ``AP_AnimeRetime`` with it keeps its frame count and reports the learned interpolator; a
  checkpoint of another model is refused with the mismatching keys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from driver.errors import ExecutionFailed
from tests.integration.test_foundation_graphs import Graph, upload
from devkit.synthetic_clips import panning_texture

pytestmark = pytest.mark.integration
TOL = 1e-5


@pytest.fixture
def models(tiny_enhance):
    return tiny_enhance


def _clip(comfy, g: Graph, tmp_path, n: int, w: int, h: int, seed: int = 0) -> str:
    """Upload ``n`` distinct noise frames; returns the id of their IMAGE batch."""
    rng = np.random.default_rng(seed)
    batch = None
    for i in range(n):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        load = g.add("LoadImage", image=upload(comfy, frame, tmp_path / f"enh_{seed}_{w}x{h}_{i}.png"))
        batch = load if batch is None else g.add("ImageBatch", image1=[batch, 0], image2=[load, 0])
    return batch


def _upscale(g: Graph, model_node: str, images: str, **kw) -> str:
    return g.add("AP_UpscaleVideo", upscale_model=[model_node, 0], images=[images, 0], **kw)


def _compare(g: Graph, a: list, b: list) -> str:
    return g.add("PreviewAny", source=[g.add("AP_TestMaxDiff", a=a, b=b), 0])


def _text(entry: dict, node: str) -> dict:
    return json.loads(entry["outputs"][node]["text"][0])


@pytest.mark.parametrize("name,scale", [("compact", 2), ("rrdb", 4)])
def test_one_tile_frames_equal_core_image_upscale_with_model(comfy, models, tmp_path, name, scale):
    g = Graph()
    images = _clip(comfy, g, tmp_path, 3, 96, 72)
    model = g.add("UpscaleModelLoader", model_name=models[name])
    core = g.add("ImageUpscaleWithModel", upscale_model=[model, 0], image=[images, 0])
    ours = _upscale(g, model, images, batch_size=3)  # all three frames in each model call
    diff = _compare(g, [core, 0], [ours, 0])
    report = g.add("PreviewAny", source=[ours, 1])
    entry = comfy.client.run(g.nodes, timeout=300)
    d, summary = _text(entry, diff), _text(entry, report)
    assert d["shape_a"] == d["shape_b"] == [3, 72 * scale, 96 * scale, 3]
    assert d["max_abs_diff"] <= TOL
    assert summary["batch_used"] == 3 and summary["oom_retries"] == 0 and summary["dtype"] == "float32"


def test_frames_larger_than_a_tile_equal_tiled_scale(comfy, models, tmp_path):
    g = Graph()
    images = _clip(comfy, g, tmp_path, 3, 200, 150, seed=1)
    model = g.add("UpscaleModelLoader", model_name=models["compact"])
    core = g.add("AP_TestTiledScale", upscale_model=[model, 0], images=[images, 0], tile=128, overlap=32)
    ours = _upscale(g, model, images, tile=128, overlap=32)
    diff = _compare(g, [core, 0], [ours, 0])
    entry = comfy.client.run(g.nodes, timeout=300)
    d = _text(entry, diff)
    assert d["shape_a"] == d["shape_b"] == [3, 300, 400, 3] and d["max_abs_diff"] <= TOL


def test_injected_out_of_memory_is_retried_with_fewer_frames_then_smaller_tiles(comfy, models, tmp_path):
    g = Graph()
    images = _clip(comfy, g, tmp_path, 3, 200, 150, seed=2)
    model = g.add("UpscaleModelLoader", model_name=models["compact"])
    failing = g.add("AP_TestOOMUpscaleModel", upscale_model=[model, 0], max_frames=1, max_tile=128)
    ours = _upscale(g, failing, images, tile=256, overlap=32, batch_size=3)
    core = g.add("AP_TestTiledScale", upscale_model=[model, 0], images=[images, 0], tile=128, overlap=32)
    diff = _compare(g, [core, 0], [ours, 0])
    report = g.add("PreviewAny", source=[ours, 1])
    entry = comfy.client.run(g.nodes, timeout=300)
    summary = _text(entry, report)
    assert summary["batch"] == 3 and summary["tile"] == 256
    # 3 -> 1 frame per call, then 256 -> 128 px tiles
    assert (summary["batch_used"], summary["tile_used"], summary["oom_retries"]) == (1, 128, 2)
    assert _text(entry, diff)["max_abs_diff"] <= TOL


def test_an_output_over_the_budget_is_refused_before_work(comfy, models, tmp_path):
    g = Graph()
    images = _clip(comfy, g, tmp_path, 2, 96, 72, seed=3)
    model = g.add("UpscaleModelLoader", model_name=models["rrdb"])
    ours = _upscale(g, model, images, target_width=16384, target_height=12288, max_output_gb=1.0)
    g.add("PreviewAny", source=[ours, 1])
    with pytest.raises(ExecutionFailed) as err:
        comfy.client.run(g.nodes, timeout=120)
    msg = err.value.exception_message
    assert err.value.node_type == "AP_UpscaleVideo" and "2 frames of 16384x12288 (via 384x288 at x4)" in msg
    assert "more than the 1.00 GiB budget" in msg


def _retime_graph(comfy, g: Graph, tmp_path, interpolator: str | None) -> str:
    pan = (panning_texture(4, 64, 96, seed=4) * 255).astype(np.uint8)
    frames = [pan[0], pan[0], pan[1], pan[2], pan[3]]  # hold, then motion
    batch = None
    for i, frame in enumerate(frames):
        load = g.add("LoadImage", image=upload(comfy, frame, tmp_path / f"retime_{i}.png"))
        batch = load if batch is None else g.add("ImageBatch", image1=[batch, 0], image2=[load, 0])
    inputs = dict(frames=[batch, 0], fps_in=16.0, fps_out=24.0, mode="keep_holds")
    if interpolator:
        inputs["interpolator"] = [interpolator, 0]
    return g.add("AP_AnimeRetime", **inputs)


@pytest.mark.parametrize("name,layout", [("rife46", "RIFE v4.6"), ("rife49", "RIFE v4.7-v4.9")])
def test_learned_retime_with_each_rife_layout(comfy, models, tmp_path, name, layout):
    g = Graph()
    rife = g.add("AP_LoadInterpolator", model_name=models[name], precision="auto", scale="1.0")
    retime = _retime_graph(comfy, g, tmp_path, rife)
    report = g.add("PreviewAny", source=[retime, 2])
    entry = comfy.client.run(g.nodes, timeout=300)
    summary = _text(entry, report)
    assert summary["frames_out"] == 7 and summary["interpolated"] > 0
    assert summary["interpolator"].startswith(f"{layout} ({models[name]}, float32")


def test_a_checkpoint_that_is_not_rife_is_refused_with_the_mismatches(comfy, models, tmp_path):
    g = Graph()
    rife = g.add("AP_LoadInterpolator", model_name=models["not_rife"])
    g.add("PreviewAny", source=[_retime_graph(comfy, g, tmp_path, rife), 2])
    with pytest.raises(ExecutionFailed) as err:
        comfy.client.run(g.nodes, timeout=120)
    assert err.value.node_type == "AP_LoadInterpolator"
    assert "model_name: not a RIFE v4 checkpoint: no 'block0.lastconv.0.weight' key" in err.value.exception_message
