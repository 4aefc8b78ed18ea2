"""Long shots on a real CPU ComfyUI: a 4-keyframe 15 s keyframed shot and a 3-segment
continuation shot render end to end through the shipped segment and join templates with
the tiny random WAN models (configs/test_tiny_wan.yaml); and a join made to fail is caught
by the seam gate, after which exactly the segments the rules name are rendered again.

Random models make noise, whose every seam the seam gate calls a cut (a rule no threshold
opens), so the WAN shots run with ``max_retakes: 0``: their join fails the seam gate and
keeps its one clip (exit 9), which is what their frame counts are checked on. The retake
tests render their segments with a test graph instead (the shipped segment template with
the WAN sampling replaced by ``AP_TestBlendClip`` and ``AP_TestSeedGlitch`` from
devkit/comfy_test_nodes): smooth blends between the keyframes, except the segment whose
first-attempt seed is glitched (a quarter of it inverted: "another clip"). The keyframed one
takes its keyframes from a 4-panel strip (``AP_StripSplit``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from anime_pipeline.core.chunkio import read_chunk
from driver.cli import main
from driver.story.plan import segment_seed
from driver.story.storyboard import REPO_ROOT
from devkit.harness.media import probe_video
from tests.integration.test_driver_wan import OPEN_GATES

pytestmark = pytest.mark.integration

JOIN_GATES = {k: v for k, v in OPEN_GATES.items() if k != "Seam Gate"}  # the seam gate keeps its defaults


def keyframe(path, level: int) -> str:
    """A textured 64x64 keyframe (a diagonal gradient plus a disc) at brightness ``level``."""
    y, x = np.mgrid[0:64, 0:64]
    img = np.clip(level + 0.8 * (x + y) + 40 * ((x - 32) ** 2 + (y - 28) ** 2 < 180), 0, 255)
    Image.fromarray(np.stack([img, img * 0.8, 255 - img], -1).astype(np.uint8)).save(path)
    return path.name


def run(comfy, tmp_path, shots: list[dict], *, max_retakes: int, max_segment: int = 81,
        segment_graph: dict | None = None) -> tuple[int, dict, object]:
    """Write the storyboard (delivery 64x64 at 16 fps) and config; run the driver; (exit code, manifest, run dir)."""
    doc = {"version": 3, "project": "TINY", "episode": 1, "delivery": {"width": 64, "height": 64, "fps": 16},
           "model_profile": "tiny_wan", "shots": shots}
    (tmp_path / "sb" / "sb.json").write_text(json.dumps(doc))
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "test_tiny_wan.yaml").read_text())
    cfg["template_overrides"] = {"wan22_join": JOIN_GATES}
    cfg["retakes"] = {"max_retakes": max_retakes}
    cfg["model_profiles"]["tiny_wan"]["video"]["max_segment"] = max_segment
    if segment_graph is not None:
        (tmp_path / "segment_test.api.json").write_text(json.dumps(segment_graph))
        cfg["templates"] = {"wan22_segment": str(tmp_path / "segment_test.api.json")}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    code = main(["run", str(tmp_path / "sb" / "sb.json"), "--server", comfy.url, "--config",
                 str(tmp_path / "cfg.yaml"), "--out", str(run_dir), "--plain"])
    return code, json.loads((run_dir / "run_manifest.json").read_text()), run_dir


@pytest.fixture
def sb(tiny_wan, tmp_path):
    (tmp_path / "sb").mkdir()
    return tmp_path / "sb"


def workflow(run_dir, att: dict) -> dict:
    return json.loads((run_dir / att["workflow_file"]["path"]).read_text())


def wan_lengths(run_dir, shot: dict, job: str) -> list[int]:
    wf = workflow(run_dir, shot["jobs"][job]["attempts"][-1])
    return [n["inputs"]["length"] for n in wf.values() if n["class_type"] == "WanFirstLastFrameToVideo"]


def chunk_frames(run_dir, shot: dict, role: str) -> int:
    frames, _, _ = read_chunk(run_dir / shot["assets"][role]["path"])
    return sum(1 for _ in frames)


def seam_gate(att: dict) -> dict:
    return next(g for g in att["gate_report"]["gates"] if g["name"] == "seam")


def test_keyframed_15s_shot_renders_three_segments_and_joins_them(comfy, sb, tmp_path):
    keys = [{"at_s": t, "image": keyframe(sb / f"k{t}.png", 30 * i)} for i, t in enumerate((0, 5, 10, 15))]
    shot = {"scene": 1, "take": 1, "generation_approach": "keyframed_flf", "duration_s": 15.0, "seed": 5,
            "keyframes": keys, "motion_prompt": "moves"}
    code, m, run_dir = run(comfy, tmp_path, [shot], max_retakes=0)
    assert code == 9, comfy.server.log_tail()  # quality_failed: noise seams (see the module docstring)
    rec = m["shots"]["S01T01"]
    for k in (1, 2, 3):
        assert wan_lengths(run_dir, rec, f"S01T01-seg{k}") == [81]
        assert chunk_frames(run_dir, rec, f"seg{k}") == 81
    (join,) = rec["jobs"]["S01T01-video"]["attempts"]
    assert join["gate_report"]["failed_gates"] == ["seam"]
    assert [s["seam_index"] for s in seam_gate(join)["metrics"]["seams"]] == [81, 161]  # 81 + 81 + 81 - 2 = 241
    assert probe_video(run_dir / rec["assets"]["video"]["path"]) == (240, (64, 64), 16.0)


def test_continuation_shot_renders_three_chained_segments(comfy, sb, tmp_path):
    shot = {"scene": 2, "take": 1, "generation_approach": "continuation_flf", "duration_s": 3.0, "seed": 6,
            "keyframes": {"first": keyframe(sb / "first.png", 40)}, "segment_prompts": ["a", "b", "c"]}
    code, m, run_dir = run(comfy, tmp_path, [shot], max_retakes=0, max_segment=21)
    assert code == 9, comfy.server.log_tail()
    rec = m["shots"]["S02T01"]
    for k in (1, 2, 3):
        assert wan_lengths(run_dir, rec, f"S02T01-seg{k}") == [17]
        assert chunk_frames(run_dir, rec, f"seg{k}") == 17
    # each later segment starts from the previous one's last frame, uploaded as its first frame
    for k in (2, 3):
        (att,) = rec["jobs"][f"S02T01-seg{k}"]["attempts"]
        (inp,) = att["inputs"]
        assert inp["role"] == f"seg{k - 1}-end" and inp["sha256"] == rec["assets"][f"seg{k - 1}-end"]["sha256"]
    (join,) = rec["jobs"]["S02T01-video"]["attempts"]
    assert [s["seam_index"] for s in seam_gate(join)["metrics"]["seams"]] == [17, 33]  # 3 x 17 - 2 = 49
    assert probe_video(run_dir / rec["assets"]["video"]["path"]) == (48, (64, 64), 16.0)


def blend_segment_graph(glitch_seed: int, glitch: str) -> dict:
    """The shipped segment template with WAN sampling replaced by a blend and a seed glitch."""
    wf = json.loads((REPO_ROOT / "workflows" / "wan22_segment.api.json").read_text())
    ids = {n["_meta"]["title"]: k for k, n in wf.items()}
    flf, high, low, decode = (ids[t] for t in ("First-Last Frame", "Sampler High", "Sampler Low", "VAE Decode"))
    wf[flf] = {"class_type": "AP_TestBlendClip", "_meta": {"title": "First-Last Frame"},
               "inputs": {k: v for k, v in wf[flf]["inputs"].items()
                          if k in ("start_image", "end_image", "width", "height", "length", "batch_size")}}
    for node, source in ((high, flf), (low, high)):
        widgets = {k: v for k, v in wf[node]["inputs"].items() if not isinstance(v, list)}
        wf[node] = {"class_type": "AP_TestSeedGlitch", "_meta": wf[node]["_meta"],
                    "inputs": {**widgets, "images": [source, 0], "glitch": glitch,
                               "glitch_seeds": str(glitch_seed) if node == low else ""}}
    del wf[decode]
    for n in wf.values():
        for k, v in n["inputs"].items():
            if v == [decode, 0]:
                n["inputs"][k] = [low, 0]
    return wf


@pytest.mark.parametrize("approach", ["keyframed_flf", "continuation_flf"])
def test_a_failed_join_retakes_exactly_the_segments_around_it(comfy, sb, tmp_path, approach):
    seed = 31
    images = [keyframe(sb / f"k{i}.png", 30 * i) for i in range(4)]
    if approach == "keyframed_flf":  # segment 2 ends on another clip: the join 2 -> 3 breaks
        strip = np.full((72, 4 * 64 + 3 * 6 + 8, 3), 255, np.uint8)  # the keyframes as one strip (AP_StripSplit)
        for i, name in enumerate(images):
            strip[4:68, 4 + 70 * i:68 + 70 * i] = np.asarray(Image.open(sb / name))
        Image.fromarray(strip).save(sb / "strip.png")
        shot = {"keyframes": [{"at_s": t} for t in range(4)], "keyframe_strip": "strip.png", "motion_prompt": "moves"}
        glitch, failed_seam, retaken = "end", 33, {1: 1, 2: 2, 3: 2}
    else:  # segment 2 starts on another clip: the join 1 -> 2 breaks; segments 2 and 3 follow
        shot = {"keyframes": {"first": images[0]}, "motion_prompt": "moves"}  # held segments: smooth joins
        glitch, failed_seam, retaken = "start", 17, {1: 1, 2: 2, 3: 2}
    shot.update(scene=3, take=1, generation_approach=approach, duration_s=3.0, seed=seed)
    graph = blend_segment_graph(segment_seed(seed, 1), glitch)  # segment 2's seed on attempt 1 only
    code, m, run_dir = run(comfy, tmp_path, [shot], max_retakes=1, max_segment=21, segment_graph=graph)
    assert code == 0, comfy.server.log_tail()
    rec = m["shots"]["S03T01"]
    assert rec["status"] == "done"
    rendered = {k: len(rec["jobs"][f"S03T01-seg{k}"]["attempts"])
                + sum(len(s["attempts"]) for s in rec["jobs"][f"S03T01-seg{k}"].get("superseded", []))
                for k in (1, 2, 3)}
    assert rendered == retaken
    first, second = rec["jobs"]["S03T01-video"]["attempts"]
    assert first["status"] == "gate_failed" and first["gate_report"]["failed_gates"] == ["seam"]
    assert seam_gate(first)["failed_frames"] == [failed_seam]
    assert second["passed"] and rec["jobs"]["S03T01-video"]["selected_attempt"] == 2
    assert probe_video(run_dir / rec["assets"]["video"]["path"]) == (48, (64, 64), 16.0)
    if approach == "keyframed_flf":  # the strip's panels are the keyframes, pixel for pixel
        for i, name in enumerate(images):
            panel = np.asarray(Image.open(run_dir / rec["assets"][f"key{i + 1}"]["path"]).convert("RGB"))
            assert np.array_equal(panel, np.asarray(Image.open(sb / name)))
