"""Standard and split FLF shots render end to end through the shipped WAN 2.2 templates on
a real CPU ComfyUI, with the tiny random WAN models and the test-only text-encoder
stand-in (configs/test_tiny_wan.yaml); a gate failure triggers a retake with a new seed.

Random models make noise, so the default gates fail it: the split shot shows the retake
(its seam gate also calls a noise seam a cut, a rule no threshold opens). The standard
shot is rendered with thresholds opened wide through the config's ``template_overrides``,
to show the whole chain runs and passes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from driver.cli import main
from driver.story.plan import derive_seed, segment_seed
from driver.story.storyboard import REPO_ROOT
from devkit.harness.media import probe_video

pytestmark = pytest.mark.integration

OPEN_GATES = {
    "Artifact Gate": {"black_fraction": 1.0, "min_luma_std": 0.0, "max_exposure_jump": 5.0, "max_clipped_increase": 1.0,
                      "min_sharpness_ratio": 0.0, "min_sharpness": 0.0, "expect_motion": False},
    "Temporal Gate": {"warp_error_floor": 1.0, "warp_error_k": 100.0, "max_median_warp_error": 1.0, "max_flicker": 1.0},
    "Keyframe Gate": {"min_ssim": 0.0, "max_mean_shift": 255.0, "max_delta_e": 100.0},
    "Seam Gate": {"warp_error_k": 100.0, "warp_error_floor": 1.0, "max_luma_jump": 255.0, "max_chroma_jump": 255.0},
}


def test_tiny_wan_standard_and_split_flf(comfy, tiny_wan, tmp_path):
    sb_dir = tmp_path / "sb"
    sb_dir.mkdir()
    for i, role in enumerate(("first", "hero", "last")):
        Image.fromarray(np.full((80, 64, 3), (40 + 80 * i, 120, 200 - 60 * i), np.uint8)).save(sb_dir / f"{role}.png")
    kf = {r: f"{r}.png" for r in ("first", "hero", "last")}
    doc = {"version": 3, "project": "TINY", "episode": 1, "delivery": {"width": 64, "height": 64, "fps": 24},
           "model_profile": "tiny_wan", "shots": [
               {"scene": 1, "take": 1, "generation_approach": "standard_flf", "duration_s": 0.5, "seed": 11,
                "motion_prompt": "moves", "keyframes": {"first": kf["first"], "last": kf["last"]}},
               {"scene": 2, "take": 1, "generation_approach": "triptych_split_flf", "duration_s": 0.75, "seed": 21,
                "motion_prompt": "moves", "keyframes": kf}]}
    (sb_dir / "tiny.json").write_text(json.dumps(doc))
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "test_tiny_wan.yaml").read_text())
    assert cfg["model_profiles"]["tiny_wan"]["video"]["unet_high"] == tiny_wan["high"]
    cfg["template_overrides"] = {"wan22_flf": {k: v for k, v in OPEN_GATES.items() if k != "Seam Gate"}}
    cfg["retakes"] = {"max_retakes": 1}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"

    code = main(["run", str(sb_dir / "tiny.json"), "--server", comfy.url, "--config", str(tmp_path / "cfg.yaml"),
                 "--out", str(run_dir), "--plain"])
    m = json.loads((run_dir / "run_manifest.json").read_text())

    def workflow(att: dict) -> dict:  # the submitted workflow, in its file beside the outputs
        return json.loads((run_dir / att["workflow_file"]["path"]).read_text())

    assert code == 9, comfy.server.log_tail()  # quality_failed: the split shot, after its retake

    flf = m["shots"]["S01T01"]
    (att,) = flf["jobs"]["S01T01-video"]["attempts"]
    assert flf["status"] == "done" and att["passed"] and att["gate_report"]["passed"]
    assert {g["name"] for g in att["gate_report"]["gates"]} == {"artifact", "temporal", "keyframe_fidelity"}
    assert probe_video(run_dir / flf["assets"]["video"]["path"]) == (12, (64, 64), 24.0)
    (length,) = [n["inputs"]["length"] for n in workflow(att).values()
                 if n["class_type"] == "WanFirstLastFrameToVideo"]
    assert length == 9  # 9 WAN frames at 16 fps -> 13 at 24 fps, trimmed to 0.5 s = 12

    split = m["shots"]["S02T01"]
    attempts = split["jobs"]["S02T01-video"]["attempts"]
    assert split["status"] == "failed" and split["error"]["code"] == "quality_failed"
    assert [a["seed"] for a in attempts] == [21, derive_seed(21, 2)]
    assert [a["status"] for a in attempts] == ["gate_failed", "gate_failed"]
    assert all("seam" in a["gate_report"]["failed_gates"] for a in attempts)
    for a in attempts:
        seeds = sorted(n["inputs"]["noise_seed"] for n in workflow(a).values()
                       if n["class_type"] == "KSamplerAdvanced")
        assert seeds == sorted([a["seed"]] * 2 + [segment_seed(a["seed"], 1)] * 2)  # segment A, segment B
        lengths = sorted(n["inputs"]["length"] for n in workflow(a).values()
                         if n["class_type"] == "WanFirstLastFrameToVideo")
        assert lengths == [5, 9]  # 13 WAN frames = 9 + 5 - 1, retimed to 24 fps and trimmed to 18
        assert (run_dir / f"attempts/TINY_EP001_S02_T01_NOCHAR_video_a{a['attempt']}.mp4").is_file()
        assert (run_dir / a["report_file"]["path"]).is_file()
    best = max(attempts, key=lambda a: a["score"])
    assert split["assets"]["video"]["attempt"] == best["attempt"]
    assert probe_video(run_dir / split["assets"]["video"]["path"]) == (18, (64, 64), 24.0)
    assert m["episode"]["cut"]["frames"] == 30
