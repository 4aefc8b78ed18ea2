"""The foundation nodes in a real ComfyUI on CPU.

* triptych: a strip PNG uploaded with /upload/image, LoadImage -> AP_TriptychSplit ->
  3x SaveImage; the downloaded panels equal the panels the strip was built from
  (PSNR >= 45 dB) for gutters and borders of 0..24 px, light and dark, strip widths not
  divisible by 3, panel edges close to (or exactly) the gutter colour;
* split FLF on the tiny random WAN 2.2 experts: strip -> AP_TriptychSplit -> first/hero/last,
  AP_FLFSegmentPlan lengths -> two WanFirstLastFrameToVideo segments (high 0->2, low 2->4)
  -> AP_FLFChainConcat -> CreateVideo -> SaveVideo: the MP4 has len(A) + len(B) - 1 frames;
* held push -> CreateVideo (fps from the push) -> SaveVideo: duration x fps frames;
* a bad input surfaces as an execution error that names the input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from driver.errors import ExecutionFailed
from devkit.harness.media import saved_video
from tests.unit.triptych_strips import CASES, DARK, StripCase

pytestmark = pytest.mark.integration

# the example size: a 1536x912 strip of 488x892 panels
REAL_SIZE = StripCase(24, 12, 12, 10, 10, DARK, ("near", "plain", "flat"), 488, 892, seed=20)
TRIPTYCH_CASES = CASES + [REAL_SIZE]


class Graph:
    """API-format prompt builder: ``g.add(cls, **inputs)`` returns the node id."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}

    def add(self, cls: str, **inputs) -> str:
        nid = str(len(self.nodes) + 1)
        self.nodes[nid] = {"class_type": cls, "inputs": inputs}
        return nid


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def upload(comfy, array: np.ndarray, path) -> str:
    Image.fromarray(array).save(path)
    return comfy.client.upload_image(path)


@pytest.mark.parametrize("case", TRIPTYCH_CASES, ids=[c.id for c in TRIPTYCH_CASES])
def test_triptych_split_returns_the_panels_exactly(comfy, case, tmp_path):
    strip, panels = case.build()
    assert case.gutter <= 24 and max(case.left, case.right, case.top, case.bottom) <= 24
    g = Graph()
    load = g.add("LoadImage", image=upload(comfy, strip, tmp_path / f"strip_{case.seed}.png"))
    split = g.add("AP_TriptychSplit", strip=[load, 0], mode="auto")
    savers = {g.add("SaveImage", images=[split, slot], filename_prefix=f"ap_test/triptych_{case.seed}_{slot}"): slot
              for slot in range(3)}
    entry = comfy.client.run(g.nodes, timeout=120)
    refs = {r["node_id"]: r for r in comfy.client.output_files(entry)}
    for node_id, slot in savers.items():
        got = np.asarray(Image.open(comfy.client.download(refs[node_id], tmp_path / f"panel_{slot}.png")).convert("RGB"))
        assert got.shape == panels[slot].shape
        assert psnr(got, panels[slot]) >= 45.0, f"panel {slot}: {psnr(got, panels[slot]):.1f} dB"


def test_tiny_wan_split_flf_chain_has_len_a_plus_len_b_minus_1_frames(comfy, tiny_wan, tmp_path):
    strip, _ = StripCase(8, 8, 8, 8, 8, DARK, panel_w=64, panel_h=64, seed=30).build()
    g = Graph()
    high = g.add("ModelSamplingSD3", model=[g.add("UNETLoader", unet_name=tiny_wan["high"], weight_dtype="default"), 0],
                 shift=5.0)
    low = g.add("ModelSamplingSD3", model=[g.add("UNETLoader", unet_name=tiny_wan["low"], weight_dtype="default"), 0],
                shift=5.0)
    cond = g.add("AP_TestZeroConditioning", tokens=8)
    vae = g.add("VAELoader", vae_name=tiny_wan["vae"])
    keys = g.add("AP_TriptychSplit", strip=[g.add("LoadImage", image=upload(comfy, strip, tmp_path / "s.png")), 0],
                 mode="auto", target_width=64, target_height=64, fit="crop")
    # 21 frames, hero at 0.3 x 20 = 6 -> frame 8 (multiple of 4, tie upward): A = 9, B = 13
    plan = g.add("AP_FLFSegmentPlan", duration_s=0.0, fps=16.0, hero_position=0.3, max_segment=81,
                 total_frames=21, hero_frame=-1)

    def segment(start_slot: int, end_slot: int, length_slot: int) -> str:
        flf = g.add("WanFirstLastFrameToVideo", positive=[cond, 0], negative=[cond, 1], vae=[vae, 0], width=64,
                    height=64, length=[plan, length_slot], batch_size=1, start_image=[keys, start_slot],
                    end_image=[keys, end_slot])
        common = dict(steps=4, cfg=1.0, sampler_name="euler", scheduler="simple", positive=[flf, 0],
                      negative=[flf, 1])
        first = g.add("KSamplerAdvanced", model=[high, 0], add_noise="enable", noise_seed=1, latent_image=[flf, 2],
                      start_at_step=0, end_at_step=2, return_with_leftover_noise="enable", **common)
        second = g.add("KSamplerAdvanced", model=[low, 0], add_noise="disable", noise_seed=1,
                       latent_image=[first, 0], start_at_step=2, end_at_step=10000,
                       return_with_leftover_noise="disable", **common)
        return g.add("VAEDecode", samples=[second, 0], vae=[vae, 0])

    seg_a, seg_b = segment(0, 1, 0), segment(1, 2, 1)
    chain = g.add("AP_FLFChainConcat", segment_a=[seg_a, 0], segment_b=[seg_b, 0], drop_shared_hero=True,
                  smooth_frames=2, color_match="fade")
    g.add("SaveVideo", video=[g.add("CreateVideo", images=[chain, 0], fps=16.0), 0],
          filename_prefix="ap_test/split_flf", format="auto", codec="auto")
    report_node = g.add("PreviewAny", source=[chain, 1])
    plan_node = g.add("PreviewAny", source=[plan, 4])

    entry = comfy.client.run(g.nodes, timeout=300)
    frames, size, fps = saved_video(comfy.client, entry, tmp_path)
    plan_json = json.loads(entry["outputs"][plan_node]["text"][0])
    assert (plan_json["length_a"], plan_json["length_b"]) == (9, 13)
    assert frames == 9 + 13 - 1 and fps == 16.0 and size == (64, 64)
    report = json.loads(entry["outputs"][report_node]["text"][0])
    assert set(report) == {"seam_index", "dropped_frame", "luma_jump", "ssim_across_seam", "hero_similarity"}
    assert report["seam_index"] == 9 and report["dropped_frame"] == 0


def test_held_push_writes_duration_times_fps_frames(comfy, tmp_path):
    still, _ = StripCase(4, 4, 4, 4, 4, panel_w=64, panel_h=96, seed=40).build()
    g = Graph()
    push = g.add("AP_HeldFramePush", image=[g.add("LoadImage", image=upload(comfy, still, tmp_path / "k.png")), 0],
                 duration_s=1.5, fps=24.0, width=96, height=64, zoom_start=1.0, zoom_end=1.3, center_x_start=0.45,
                 center_y_start=0.5, center_x_end=0.55, center_y_end=0.45, easing="ease_in_out",
                 sampling="bicubic")
    g.add("SaveVideo", video=[g.add("CreateVideo", images=[push, 0], fps=[push, 1]), 0],
          filename_prefix="ap_test/push", format="auto", codec="auto")
    entry = comfy.client.run(g.nodes, timeout=120)
    frames, size, fps = saved_video(comfy.client, entry, tmp_path)
    assert frames == 36 and fps == 24.0 and size == (96, 64)


def test_bad_input_fails_with_a_message_naming_the_input(comfy):
    g = Graph()
    plan = g.add("AP_FLFSegmentPlan", duration_s=30.0, fps=16.0, hero_position=0.5, max_segment=81)
    g.add("PreviewAny", source=[plan, 4])
    with pytest.raises(ExecutionFailed) as err:
        comfy.client.run(g.nodes, timeout=60)
    assert err.value.node_type == "AP_FLFSegmentPlan" and err.value.exception_type.endswith("InputError")
    assert "duration_s" in err.value.exception_message and "more segments" in err.value.exception_message
