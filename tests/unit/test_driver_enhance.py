"""The video model profile's optional learned stages (issue 14): ``keyframe_upscale_model``
(each split triptych panel upscaled, then fitted to the keyframe size), ``delivery_upscale_model``
(the retimed clip upscaled to the delivery size) and ``interpolator`` (the retime's RIFE model).
Off (absent or null), every compiled workflow is exactly the template's graph, unchanged."""

from __future__ import annotations

import pytest

from driver.render.compile import Compiler
from driver.config import build_config
from driver.errors import ConfigError
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard
from driver.render.workflow import find, is_link, load_template
from tests.unit.driver_fakes import shot, write_storyboard

SHOTS = [shot(1, 1, "standard_flf"), shot(2, 1, "triptych_split_flf", duration_s=2.0), shot(3, 1, "held_frame_push"),
         shot(4, 1, "held_frame_static")]
KEYS = ("keyframe_upscale_model", "delivery_upscale_model", "interpolator")
ON = {"keyframe_upscale_model": "4x-AnimeSharp.pth", "delivery_upscale_model": "realesr-animevideov3.pth",
      "interpolator": "rife49.pth"}


def _compiled(tmp_path, video: dict | None) -> dict[str, dict]:
    profile = {"wan22_sdxl": {"video": video}} if video is not None else {}
    cfg = build_config({"model_profiles": profile} if profile else {}, tmp_path)
    sb = load_storyboard(write_storyboard(tmp_path, SHOTS))
    comp = Compiler(sb, cfg, "TST-EP007-abc")
    return {job.id: comp.compile(job) for job in make_plan(sb, cfg).jobs}


def test_off_compiles_exactly_the_template_graph(tmp_path):
    absent = _compiled(tmp_path / "a", None)
    null = _compiled(tmp_path / "n", dict.fromkeys(KEYS))
    assert absent.keys() == null.keys() and len(absent) >= 8
    for job_id, c in absent.items():
        assert c.prompt == null[job_id].prompt and c.sha256 == null[job_id].sha256, job_id
        types = {n["class_type"] for n in c.prompt.values()}
        assert not types & {"AP_UpscaleVideo", "UpscaleModelLoader", "AP_LoadInterpolator"}, job_id
        retime = find(c.prompt, "Retime")
        assert not retime or "interpolator" not in c.prompt[retime[0]]["inputs"]


def test_on_inserts_the_stages_bound_by_title(tmp_path):
    compiled = _compiled(tmp_path, ON)
    split = compiled["S02T01-kf-split"].prompt
    (loader,) = find(split, "Keyframe Upscale Model")
    assert split[loader]["inputs"] == {"model_name": "4x-AnimeSharp.pth"}
    (tsplit,) = find(split, "Triptych Split")
    assert (split[tsplit]["inputs"]["target_width"], split[tsplit]["inputs"]["target_height"]) == (0, 0)
    for slot, role in enumerate(("First", "Hero", "Last")):
        (up,) = find(split, f"Upscale {role}")
        inputs = split[up]["inputs"]
        assert inputs["images"] == [tsplit, slot] and inputs["upscale_model"] == [loader, 0]
        assert (inputs["target_width"], inputs["target_height"], inputs["fit"]) == (64, 96, "crop")
        (save,) = find(split, f"Save {role}")
        assert split[save]["inputs"]["images"] == [up, 0]
    for job_id in ("S01T01-video", "S02T01-video"):
        p = compiled[job_id].prompt
        (retime,), (rife,) = find(p, "Retime"), find(p, "Interpolator")
        assert p[rife] == {"class_type": "AP_LoadInterpolator", "inputs": {"model_name": "rife49.pth"},
                           "_meta": {"title": "Interpolator"}}
        assert p[retime]["inputs"]["interpolator"] == [rife, 0]
        (fit,), (up,), (video,) = find(p, "Fit Frames"), find(p, "Delivery Upscale"), find(p, "Create Video")
        assert p[up]["inputs"]["images"] == [fit, 0] and p[video]["inputs"]["images"] == [up, 0]
        (dl,) = find(p, "Delivery Upscale Model")
        assert p[dl]["inputs"] == {"model_name": "realesr-animevideov3.pth"}
        assert (p[up]["inputs"]["target_width"], p[up]["inputs"]["target_height"]) == (64, 96)
        assert all(v[0] in p for n in p.values() for v in n["inputs"].values() if is_link(v))
    for job_id in ("S03T01-video", "S04T01-video"):  # held shots have no retime: unchanged
        assert compiled[job_id].prompt == _compiled(tmp_path / "off", None)[job_id].prompt


def test_each_stage_is_independent(tmp_path):
    only = _compiled(tmp_path, {"interpolator": "rife47.pth"})
    p = only["S01T01-video"].prompt
    assert find(p, "Interpolator") and not find(p, "Delivery Upscale")
    assert only["S02T01-kf-split"].prompt == _compiled(tmp_path / "off", None)["S02T01-kf-split"].prompt
    template = load_template(REPO_ROOT / "workflows" / "triptych_split.api.json")
    assert set(only["S02T01-kf-split"].prompt) == set(template)


def test_a_non_string_model_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="interpolator"):
        build_config({"model_profiles": {"wan22_sdxl": {"video": {"interpolator": 49}}}}, tmp_path)
