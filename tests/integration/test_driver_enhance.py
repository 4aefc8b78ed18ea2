"""The episode pipeline with the learned stages on (issue 14), end to end on a real CPU ComfyUI
with the tiny random WAN models, a tiny Compact x2 upscaler and a tiny RIFE v4.9-layout file:
a standard-FLF shot and a split-FLF shot from a triptych strip. The strip's panels are upscaled
and fitted to the keyframe size, both clips are retimed with the learned interpolator and
upscaled to the delivery size. Gates are opened wide (random models make noise); the split
shot's seam gate still calls a noise seam a cut (no threshold opens it), so that shot ends
quality_failed after rendering, as in test_driver_wan.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from driver.story.storyboard import REPO_ROOT
from devkit.harness.media import probe_video
from tests.integration.test_driver_wan import OPEN_GATES, render

pytestmark = pytest.mark.integration


def _types(workflow: dict) -> dict[str, str]:
    return {n["_meta"]["title"]: n["class_type"] for n in workflow.values()}


def test_split_and_standard_flf_with_keyframe_and_delivery_upscaling(comfy, tiny_wan, tiny_enhance, tmp_path):
    sb_dir = tmp_path / "sb"
    sb_dir.mkdir()
    rng = np.random.default_rng(3)
    strip = np.concatenate([np.full((40, 40, 3), (60 * i + 40, 120, 90), np.uint8) for i in range(3)], axis=1)
    noisy = np.clip(strip + rng.integers(0, 30, strip.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(sb_dir / "strip.png")
    for role in ("first", "last"):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(sb_dir / f"{role}.png")
    doc = {"version": 3, "project": "ENH", "episode": 1, "delivery": {"width": 64, "height": 64, "fps": 24},
           "model_profile": "tiny_wan", "shots": [
               {"scene": 1, "take": 1, "generation_approach": "standard_flf", "duration_s": 0.5, "seed": 11,
                "motion_prompt": "moves", "keyframes": {"first": "first.png", "last": "last.png"}},
               {"scene": 2, "take": 1, "generation_approach": "triptych_split_flf", "duration_s": 0.75, "seed": 21,
                "motion_prompt": "moves", "keyframes": {"strip": "strip.png"}}]}
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "test_tiny_wan.yaml").read_text())
    cfg["model_profiles"]["tiny_wan"]["video"].update(keyframe_upscale_model=tiny_enhance["compact"],
                                                      delivery_upscale_model=tiny_enhance["compact"],
                                                      interpolator=tiny_enhance["rife49"])
    cfg["template_overrides"] = {"wan22_flf": {k: v for k, v in OPEN_GATES.items() if k != "Seam Gate"},
                                 "wan22_split_flf": OPEN_GATES}
    cfg["retakes"] = {"max_retakes": 0}
    code, m, run_dir = render(comfy, tmp_path, sb_dir, doc, cfg)
    assert code == 9, comfy.server.log_tail()  # the split shot's seam gate, as in test_driver_wan

    def workflow(att: dict) -> dict:  # the submitted workflow, in its file beside the outputs (manifest v2)
        return json.loads((run_dir / att["workflow_file"]["path"]).read_text())

    (split_att,) = m["shots"]["S02T01"]["jobs"]["S02T01-kf-split"]["attempts"]
    types = _types(workflow(split_att))
    assert [types[f"Upscale {r}"] for r in ("First", "Hero", "Last")] == ["AP_UpscaleVideo"] * 3
    assert types["Keyframe Upscale Model"] == "UpscaleModelLoader"
    for role in ("first", "hero", "last"):
        path = run_dir / m["shots"]["S02T01"]["assets"][role]["path"]
        assert Image.open(path).size == (64, 64)  # 40 px panels, x2 = 80, fitted to the 64 px keyframe size

    flf = m["shots"]["S01T01"]
    (att,) = flf["jobs"]["S01T01-video"]["attempts"]
    assert flf["status"] == "done" and att["passed"]
    types = _types(workflow(att))
    assert (types["Interpolator"], types["Delivery Upscale"]) == ("AP_LoadInterpolator", "AP_UpscaleVideo")
    assert probe_video(run_dir / flf["assets"]["video"]["path"]) == (12, (64, 64), 24.0)

    (split,) = m["shots"]["S02T01"]["jobs"]["S02T01-video"]["attempts"]
    assert split["status"] == "gate_failed" and "Delivery Upscale" in _types(workflow(split))
    assert probe_video(run_dir / f"attempts/ENH_EP001_S02_T01_NOCHAR_video_a{split['attempt']}.mp4") == \
        (18, (64, 64), 24.0)
