"""Long shots: the N-segment planner, the N-way concat, the N-panel split, the storyboard's
keyframed_flf / continuation_flf rules, their jobs and compiled graphs, and which segments a
failed join retakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anime_pipeline.core.chain import concat_chain
from anime_pipeline.core.errors import InputError
from anime_pipeline.core.panels import detect_panels, split_panels
from anime_pipeline.core.segment_chain import plan_continuation, plan_keyframed
from anime_pipeline.core.segments import is_wan_length
from anime_pipeline.nodes.video import FLFChainConcat
from driver.config import load_config
from driver.errors import ConfigError
from driver.render.chain import identity_drift, segments_to_retake
from driver.render.compile import Compiler
from driver.story.plan import make_plan, retimed_count, wan_length_for
from driver.story.storyboard import load_storyboard
from tests.unit.driver_fakes import png, shot, write_storyboard

MAX = 81


def _check_chain(plan, total):
    assert all(is_wan_length(n) and 5 <= n <= MAX for n in plan.lengths), plan.lengths
    assert sum(plan.lengths) - (len(plan.lengths) - 1) == plan.total == total
    assert all(j % 4 == 0 for j in plan.joins)


@pytest.mark.parametrize("fps", [16, 24])
@pytest.mark.parametrize("duration", range(1, 61))
def test_planner_lengths_and_exact_totals(duration, fps):
    frames = duration * fps
    total = wan_length_for(frames, 16, fps)
    assert retimed_count(total, 16, fps) >= frames  # the join trims the retimed clip to exactly `frames`
    cont = plan_continuation(total, MAX)
    _check_chain(cont, total)
    assert len(cont.lengths) == max(1, -(-(total - 1) // (MAX - 1)))  # the fewest segments that fit
    times = [min(t, duration) for t in np.arange(0, duration + 4.99, 4.5)]
    times = sorted(set(times) | {duration})
    keyed = plan_keyframed(total, [t * 16 for t in times], MAX)
    _check_chain(keyed, total)
    assert len(keyed.lengths) == len(times) - 1


def test_keyframed_joins_sit_at_the_keyframes_and_bad_spacing_is_refused():
    plan = plan_keyframed(241, [0, 80, 160, 241], MAX)  # 15 s at 16 fps, keyframes every 5 s
    assert plan.lengths == (81, 81, 81) and plan.joins == (80, 160) and plan.seams == (81, 161)
    assert plan.segment_of(80) == 0 and plan.segment_of(81) == 1 and plan.segment_of(240) == 2
    with pytest.raises(InputError, match=r"k1 -> k2 is 161 WAN frames .*add a keyframe"):
        plan_keyframed(241, [0, 80, 241], MAX, names=["k0", "k1", "k2"])
    with pytest.raises(InputError, match="at least 5"):
        plan_keyframed(241, [0, 80, 81, 241], MAX)


def test_concat_chain_n_way_and_the_node_accumulates_seam_reports():
    segs = [torch.full((n, 8, 8, 3), v) for n, v in ((9, 0.1), (5, 0.2), (13, 0.3), (5, 0.4))]
    frames, reports = concat_chain(segs)
    assert frames.shape[0] == 9 + 5 + 13 + 5 - 3
    plan = plan_keyframed(29, [0, 8, 12, 24, 28], 81)
    assert [r["seam_index"] for r in reports] == list(plan.seams) == [9, 13, 25]
    node = FLFChainConcat()
    out, report = node.concat(segs[0], segs[1])
    for seg in segs[2:]:
        out, report = node.concat(out, seg, previous_report=report)
    assert torch.equal(out, frames)
    assert [r["seam_index"] for r in json.loads(report)] == [9, 13, 25]
    with pytest.raises(InputError, match="previous_report"):
        node.concat(segs[0], segs[1], previous_report="[1]")


def _strip(panels: int, width=40, height=30, gutter=4, border=3, bg=1.0):
    rng = np.random.default_rng(panels)
    w = border * 2 + panels * width + (panels - 1) * gutter
    strip = np.full((height + 2 * border, w, 3), bg, np.float32)
    for k in range(panels):
        x = border + k * (width + gutter)
        strip[border:border + height, x:x + width] = rng.uniform(0.1, 0.8, (height, width, 3))
    return strip, [(border + k * (width + gutter), border, width, height) for k in range(panels)]


@pytest.mark.parametrize("panels", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("bg", [1.0, 0.0])
def test_n_panel_split_finds_every_panel(panels, bg):
    strip, boxes = _strip(panels, bg=bg)
    layout = detect_panels(strip, panels)
    assert [(b.x, b.y, b.w, b.h) for b in layout.boxes] == boxes
    crops, _ = split_panels(strip, panels)
    assert len(crops) == panels and all(c.shape == (30, 40, 3) for c in crops)


def test_n_panel_split_refuses_a_strip_without_gutters():
    noise = np.random.default_rng(0).uniform(0, 1, (30, 200, 3)).astype(np.float32)
    with pytest.raises(InputError, match="no 3 gutters"):
        detect_panels(noise, 4)
    strip, _ = _strip(3)
    with pytest.raises(InputError, match="gutters"):
        detect_panels(strip, 5)  # a 3-panel strip read as 5


def keyframed(**fields):
    base = {"duration_s": 15.0, "motion_prompt": "moves",
            "keyframes": [{"at_s": 0, "prompt": "a"}, {"at_s": 5, "prompt": "b"}, {"at_s": 10, "image": "k.png"},
                          {"at_s": 15, "prompt": "d"}]}
    return shot(1, 1, "keyframed_flf", **{**base, **fields})


def continuation(**fields):
    base = {"duration_s": 12.0, "first_prompt": "a", "segment_prompts": ["x", "y", "z"]}
    s = shot(2, 1, "continuation_flf", **{**base, **fields})
    s.pop("triptych_prompt")
    s.pop("motion_prompt")
    return s


def _sb(tmp_path, shots):
    png(tmp_path / "k.png")
    return load_storyboard(write_storyboard(tmp_path, shots))


def test_long_shot_jobs_and_compiled_graphs(tmp_path):
    sb = _sb(tmp_path, [keyframed(), continuation()])
    config = load_config(None)
    plan = make_plan(sb, config)
    ids = {j.id: j for j in plan.jobs}
    assert [j for j in ids if j.startswith("S01T01-seg")] == ["S01T01-seg1", "S01T01-seg2", "S01T01-seg3"]
    assert [j.wan_lengths[0] for j in plan.jobs if j.id.startswith("S01T01-seg")] == [81, 81, 81]
    assert [i.role for i in ids["S01T01-seg3"].inputs] == ["key3", "key4"] and ids["S01T01-seg3"].inputs[0].file
    join = ids["S01T01-video"]
    assert join.frames == 360 and join.gated and join.params["seams"] == [81, 161]
    assert ids["S02T01-seg2"].depends_on == ("S02T01-seg1",) and ids["S02T01-seg2"].inputs[0].role == "seg1-end"
    assert ids["S02T01-seg1"].outputs == ("seg1", "seg1-end") and ids["S02T01-seg3"].outputs == ("seg3",)
    compiler = Compiler(sb, config, "RUN")
    wf = compiler.compile(join).prompt
    concats = [n for n in wf.values() if n["class_type"] == "AP_FLFChainConcat"]
    assert len(concats) == 2 and sum(n["class_type"] == "AP_LoadChunk" for n in wf.values()) == 3
    seam = next(n for n in wf.values() if n["class_type"] == "AP_SeamGate")
    last = next(k for k, n in wf.items() if n["_meta"]["title"] == "Chain Concat 2")
    assert seam["inputs"]["seam_report"] == [last, 1] and wf[last]["inputs"]["previous_report"][1] == 1
    seg = compiler.compile(ids["S02T01-seg2"]).prompt
    assert not any(n["_meta"]["title"] == "Last Frame" for n in seg.values())  # continuation: no end keyframe
    assert "end_image" not in next(n for n in seg.values() if n["class_type"] == "WanFirstLastFrameToVideo")["inputs"]
    join2 = compiler.compile(ids["S02T01-video"]).prompt
    refs = next(n for n in join2.values() if n["_meta"]["title"] == "Keyframe Gate")["inputs"]
    assert "end_image" not in refs and "start_image" in refs


@pytest.mark.parametrize("change, problem", [
    (lambda s: s["keyframes"].reverse(), "keyframes[0].at_s: the first keyframe must be at 0 s"),
    (lambda s: s["keyframes"][2].update(at_s=4), "keyframes[2].at_s: 4 s is not after keyframes[1]"),
    (lambda s: s["keyframes"][3].update(at_s=16), "keyframes[3].at_s: 16 s is outside the shot"),
    (lambda s: s.update(duration_s=0.1), "keyframes: 4 keyframes but the shot has only 2 frames"),
    (lambda s: s.update(segment_prompts=["a", "b"]), "segment_prompts: 2 prompts for 3 segments"),
])
def test_keyframed_storyboard_errors_name_the_json_path(tmp_path, change, problem):
    s = keyframed()
    change(s)
    png(tmp_path / "k.png")
    with pytest.raises(ConfigError) as err:
        load_storyboard(write_storyboard(tmp_path, [s]))
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_plan_errors_name_the_json_path(tmp_path):
    s = keyframed(keyframes=[{"at_s": 0, "prompt": "a"}, {"at_s": 15, "prompt": "b"}])
    with pytest.raises(ConfigError, match=r"shots\[0\]\.keyframes: segment keyframes\[0\] \(0 s\) -> keyframes\[1\]"
                                          r" \(15 s\) is 241 WAN frames"):
        make_plan(_sb(tmp_path, [s]), load_config(None))
    c = continuation(segment_prompts=["x", "y"])
    with pytest.raises(ConfigError, match=r"shots\[0\]\.segment_prompts: 2 prompts for the 3 segments"):
        make_plan(_sb(tmp_path / "c", [c]), load_config(None))
    bad = continuation()
    bad.pop("first_prompt")
    with pytest.raises(ConfigError, match=r"shots\[0\]"):
        _sb(tmp_path / "d", [bad])


def _report(**gates):
    return {"passed": False, "gates": [{"name": n, "passed": False, "failed_frames": f} for n, f in gates.items()]}


def test_a_failed_join_retakes_exactly_the_segments_around_it():
    keyed = {"lengths": [81, 81, 81, 81], "seams": [81, 161, 241], "chain": "keyframed_flf"}
    cont = dict(keyed, chain="continuation_flf")
    assert segments_to_retake(_report(seam=[161]), keyed) == [1, 2]
    assert segments_to_retake(_report(seam=[161]), cont) == [2, 3]  # the one after the join, and every later one
    assert segments_to_retake(_report(seam=[81, 241]), keyed) == [0, 1, 2, 3]
    assert segments_to_retake(_report(artifact=[10, 300]), keyed) == [0, 3]
    assert segments_to_retake(_report(temporal=[]), keyed) == [0, 1, 2, 3]
    assert segments_to_retake(_report(artifact=[170]), cont) == [2, 3]


def test_identity_drift_first_vs_last_segment():
    report = {"gates": [{"name": "identity", "passed": True,
                         "metrics": {"similarity": {"0": 0.9, "40": 0.8, "100": 0.5, "200": 0.6, "240": 0.4}}}]}
    assert identity_drift(report, [81, 81, 81]) == pytest.approx(0.85 - 0.5)
    assert identity_drift({"gates": []}, [81, 81]) is None


def test_keyframes_from_a_strip_are_split_by_one_job(tmp_path):
    strip, _ = _strip(4)
    from PIL import Image

    Image.fromarray((strip * 255).round().astype(np.uint8)).save(tmp_path / "strip.png")
    keys = [{"at_s": 0}, {"at_s": 5}, {"at_s": 10, "prompt": "c"}, {"at_s": 15}]
    sb = _sb(tmp_path, [keyframed(keyframes=keys, keyframe_strip="strip.png")])
    plan = make_plan(sb, load_config(None))
    ids = {j.id: j for j in plan.jobs}
    split = ids["S01T01-kf-split"]
    assert split.template == "strip_split" and split.outputs == ("key1", "key2", "key4")
    assert split.inputs[0].file.endswith("strip.png") and ids["S01T01-kf-key3"].template.startswith("t2i")
    assert [i.job for i in ids["S01T01-seg3"].inputs] == ["S01T01-kf-key3", "S01T01-kf-split"]
    compiled = Compiler(sb, load_config(None), "RUN").compile(split)
    titles = {n["_meta"]["title"]: n for n in compiled.prompt.values()}
    assert {t for t in titles if t.startswith("Save Panel")} == {"Save Panel 1", "Save Panel 2", "Save Panel 4"}
    assert titles["Panel 4"]["inputs"]["batch_index"] == 3 and titles["Strip Split"]["inputs"]["panels"] == 4
    assert sorted(compiled.outputs.values()) == ["key1", "key2", "key4"]


def test_strip_errors_name_the_json_path(tmp_path):
    noise = np.random.default_rng(1).integers(0, 255, (40, 200, 3), np.uint8)
    from PIL import Image

    Image.fromarray(noise).save(tmp_path / "noise.png")
    png(tmp_path / "k.png")
    keys = [{"at_s": 0}, {"at_s": 5}, {"at_s": 10}, {"at_s": 15}]
    with pytest.raises(ConfigError) as err:
        load_storyboard(write_storyboard(tmp_path, [keyframed(keyframes=keys, keyframe_strip="noise.png")]))
    assert any(p.startswith("shots[0].keyframe_strip: noise.png: no 3 gutters") for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        load_storyboard(write_storyboard(tmp_path, [keyframed(keyframes=keys)]))
    assert "shots[0].keyframes[1]: give an image, a prompt, or the shot a keyframe_strip" in err.value.problems


def test_strip_split_node_returns_the_panels_at_one_size():
    from anime_pipeline.nodes.image import StripSplit

    strip, boxes = _strip(5)
    panels, report = StripSplit().split(torch.from_numpy(strip)[None], 5, target_width=32, target_height=24)
    assert panels.shape == (5, 24, 32, 3)
    info = json.loads(report)
    assert [(b["x"], b["y"], b["w"], b["h"]) for b in info["boxes"]] == boxes and info["output_size"] == [32, 24]
    with pytest.raises(InputError, match="AP_StripSplit.strip"):
        StripSplit().split(torch.rand(1, 30, 200, 3), 4)


class SeamFailingClient:
    """A FakeClient whose next join reports fail the seam gate at the given seams, in turn."""

    def __new__(cls, server, seams: list[int]):
        from tests.unit.driver_fakes import FakeClient

        class Client(FakeClient):
            def _execute(self, prompt, prompt_id):
                entry = super()._execute(prompt, prompt_id)
                for nid, node in prompt.items():
                    if node["class_type"] == "AP_QualityReport" and seams and "-video-" in prompt_id:
                        gate = {"name": "seam", "passed": False, "failed_frames": [seams.pop(0)]}
                        entry["outputs"][nid] = {"ap_quality_report": [{"version": 1, "passed": False,
                                                                        "gates": [gate]}]}
                return entry
        return Client(server)


@pytest.mark.parametrize("approach, seam, retaken", [("keyframed_flf", 161, [1, 2, 2]),
                                                     ("continuation_flf", 81, [1, 2, 2])])
def test_retakes_by_segment_and_resume_per_segment(tmp_path, approach, seam, retaken):
    from tests.unit.driver_fakes import FakeServer
    from tests.unit.test_driver_resume import Run

    for k in range(4):
        png(tmp_path / "sb" / f"k{k}.png", colour=(40 * k, 90, 200))
    if approach == "keyframed_flf":
        s = keyframed(keyframes=[{"at_s": 5.0 * k, "image": f"k{k}.png"} for k in range(4)])
    else:
        s = continuation(duration_s=15.0, keyframes={"first": "k0.png"})
        s.pop("first_prompt")
    run, server = Run(tmp_path, [s]), FakeServer()
    result = run(SeamFailingClient(server, [seam]), max_retakes=1)
    sid = next(iter(run.manifest.data["shots"]))
    assert not result.failures and run.shot(sid)["status"] == "done"
    renders = [len(run.job(sid, f"seg{k}")["attempts"])  # superseded: rendered before its first frame changed
               + sum(len(x["attempts"]) for x in run.job(sid, f"seg{k}").get("superseded", [])) for k in (1, 2, 3)]
    assert renders == retaken
    join = run.job(sid)
    assert [a["status"] for a in join["attempts"]] == ["gate_failed", "done"] and join["selected_attempt"] == 2
    seeds = [a["seed"] for a in run.job(sid, "seg2")["attempts"]]
    assert seeds[0] != seeds[1]  # the retake renders with a new seed
    before = list(server.submitted)
    again = run(SeamFailingClient(server, []), max_retakes=1)
    assert server.submitted == before and again.rendered == 0  # resume: every segment and the join skipped


def test_review_lists_a_keyframed_shots_keyframes_in_order():
    from driver.outputs.review_state import key_roles

    assert key_roles({"key10": {}, "key2": {}, "video": {}, "keyx": {}, "key1": {}}) == ("key1", "key2", "key10")
