"""The CLI without a server: validate, run --dry-run (every workflow written), status,
the no-server error, preflight problem listing, the episode cut."""

import json
import socket

import av
import numpy as np
import pytest

from driver.render import preflight
from driver.outputs.assemble import fit_frames, write_cut
from driver.cli import main
from driver.render.compile import Compiler
from driver.config import load_config
from driver.errors import PreflightFailed
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard
from tests.unit.driver_fakes import shot, write_storyboard

EP1 = REPO_ROOT / "storyboards" / "storyboard_ep_001.json"


def test_validate(capsys, tmp_path):
    assert main(["validate", str(EP1)]) == 0
    assert "valid (6 shots" in capsys.readouterr().out
    bad = write_storyboard(tmp_path, [shot(1, 1, "held_frame_static", duration_s=0)])
    assert main(["validate", str(bad)]) == 2
    assert "shots[0].duration_s: expected a number > 0" in capsys.readouterr().err


def test_dry_run_writes_every_workflow_without_a_server(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(EP1), "--dry-run", "--out", str(out), "--config",
                 str(REPO_ROOT / "configs" / "project.example.yaml")]) == 0
    plan = json.loads((out / "dry-run" / "plan.json").read_text())
    assert len(plan["jobs"]) == 13 and plan["estimate_gpu_s"] > 0
    for job in plan["jobs"]:
        workflow = json.loads((out / "dry-run" / job["workflow"]).read_text())
        assert workflow and all("class_type" in n for n in workflow.values())
    assert {p.name for p in out.iterdir()} == {"dry-run", ".driver.lock"}  # the lock file stays for the next run


def test_no_server_says_so_and_how_to_start_one(tmp_path, caplog, monkeypatch):
    """Nothing answers and no ComfyUI is installed: exit 13 with the one install command (nothing started,
    nothing written outside the run folder); with ``local_comfyui: none``, exit 3."""
    monkeypatch.setenv("AP_COMFYUI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sb = write_storyboard(tmp_path / "sb", [shot(1, 1, "held_frame_static")])
    code = main(["run", str(sb), "--out", str(tmp_path / "run"), "--server", f"http://127.0.0.1:{port}", "--plain"])
    assert code == 13
    assert f"no ComfyUI answers at http://127.0.0.1:{port}" in caplog.text
    assert "`python -m driver comfyui install`" in caplog.text and "--comfyui DIR" in caplog.text
    assert {p.name for p in tmp_path.iterdir()} == {"sb", "run"}
    config = tmp_path / "none.yaml"
    config.write_text("local_comfyui: none\n")
    code = main(["run", str(sb), "--out", str(tmp_path / "run"), "--server", f"http://127.0.0.1:{port}",
                 "--config", str(config), "--plain"])
    assert code == 3 and "local_comfyui: none" in caplog.text


def test_status(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    (tmp_path / "run_manifest.json").write_text(json.dumps({
        "manifest_version": 1, "run_id": "R", "storyboard": {"path": "x"},
        "episode": {"cut": {"path": "X_cut.mp4", "placeholders": ["S01T02"]}},
        "shots": {"S01T01": {"status": "done", "approach": "held_frame_static",
                             "jobs": {"S01T01-kf": {"attempts": [{}]}, "S01T01-video": {"attempts": [{}, {}, {}]}},
                             "assets": {"video": {}}},
                  "S01T02": {"status": "failed", "approach": "wan_flf", "jobs": {}}}}))
    assert main(["status", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shots"]["S01T01"] == {"status": "done", "approach": "held_frame_static",
                                       "attempts": {"kf": 1, "video": 3}, "review": None, "clip_review": None,
                                       "assets": ["video"], "error": None}
    assert info["counts"] == {"done": 1, "failed": 1} and info["placeholders"] == ["S01T02"]
    (tmp_path / "approvals.json").write_text(json.dumps({"S01T01": "approve"}))  # the first format
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["shot", "status", "approach", "keyframes", "clip", "attempts", "per", "job"]
    assert out[2].split() == ["S01T01", "done", "held_frame_static", "approve", "-", "kf", "1,", "video", "3"]
    assert "review pending" not in "\n".join(out) and out[-2].strip() == "shots: 1 done, 1 failed"
    assert out[-1].strip() == "cut: X_cut.mp4 (black placeholders for S01T02)"


def _info(missing=()):
    combo = lambda *names: [list(names), {}]  # noqa: E731 - V1 combo spec
    info = {
        "LoadImage": {"input": {"required": {"image": [[], {"image_upload": True}]}}},
        "ImageScale": {"input": {"required": {"image": ["IMAGE", {}], "upscale_method": combo("lanczos"),
                                              "width": ["INT", {}], "height": ["INT", {}], "crop": combo("center")}}},
        "RepeatImageBatch": {"input": {"required": {"image": ["IMAGE", {}], "amount": ["INT", {}]}}},
        "CreateVideo": {"input": {"required": {"images": ["IMAGE", {}], "fps": ["FLOAT", {}]}}},
        "SaveVideo": {"input": {"required": {"video": ["VIDEO", {}], "filename_prefix": ["STRING", {}],
                                             "format": ["COMBO", {"options": ["auto", "mp4"]}],
                                             "codec": ["COMBO", {"options": ["auto", "h264"]}]}}},
    }
    for m in missing:
        info.pop(m)
    return info


def test_preflight_lists_every_problem_with_shot_and_title(tmp_path):
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "held_frame_static"), shot(1, 2, "held_frame_static")]))
    cfg = load_config(None)
    compiler = Compiler(sb, cfg, "R")
    compiled = [compiler.compile(j) for j in make_plan(sb, cfg).jobs if j.stage == "video"]
    preflight.check(compiled, _info())
    info = _info(missing=["RepeatImageBatch"])
    info["ImageScale"]["input"]["required"]["upscale_method"] = [["bilinear"], {}]
    with pytest.raises(PreflightFailed) as err:
        preflight.check(compiled, info)
    problems = err.value.problems
    assert "S01T01 S01T01-video: node 'Hold' (RepeatImageBatch): node type RepeatImageBatch does not exist" \
           " (a custom node pack is missing on this server)" in problems
    assert any(p.startswith("S01T02 S01T02-video: node 'Resize' (ImageScale): upscale_method 'lanczos' is not on")
               for p in problems)
    assert len(problems) == 4
    assert err.value.missing_types == ["RepeatImageBatch"] and not err.value.lacks_pack()


def test_preflight_wan_length_and_pack_nodes():
    c = type("C", (), {})()
    c.job = type("J", (), {"shot": "S01T01", "id": "S01T01-video"})()
    c.prompt = {"1": {"class_type": "WanFirstLastFrameToVideo", "inputs": {"length": 80}, "_meta": {"title": "FLF"}},
                "2": {"class_type": "AP_FLFChainConcat", "inputs": {}}}
    problems = preflight.workflow_problems(c, {"WanFirstLastFrameToVideo": {"input": {"required": {}}}})
    assert any("length 80 is not 4n+1" in p for p in problems)
    assert any("AP_FLFChainConcat does not exist (the anime_pipeline pack is not installed" in p for p in problems)
    assert preflight.missing_types([c], {"WanFirstLastFrameToVideo": {}}) == ["AP_FLFChainConcat"]
    assert PreflightFailed("x", missing_types=["AP_FLFChainConcat"]).lacks_pack()  # data the farm acts on
    assert preflight.registry_problems([("S01T01", "a.safetensors"), ("S01T01", "a.safetensors")], []) == \
        ["S01T01: character LoRA 'a.safetensors' (from the registry) is not in the server's loras folder"]


def _clip(path, n, colour, size=(64, 96), fps=24):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), colour, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_episode_cut_keeps_storyboard_timing(tmp_path):
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "held_frame_static", duration_s=1.0),
                                                     shot(1, 2, "held_frame_static", duration_s=0.5),
                                                     shot(1, 3, "held_frame_static", duration_s=0.25)],
                                          delivery={"width": 64, "height": 96, "fps": 24}))
    clips = {"S01T01": _clip(tmp_path / "a.mp4", 30, (250, 10, 10)), "S01T02": _clip(tmp_path / "b.mp4", 5,
                                                                                       (10, 250, 10)), "S01T03": None}
    info = write_cut(sb, clips, tmp_path / "cut.mp4")
    assert info["frames"] == 24 + 12 + 6
    assert info["shots"] == {"S01T01": "trimmed 6", "S01T02": "held last frame x7",
                             "S01T03": "missing: black placeholder"}
    with av.open(str(tmp_path / "cut.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert c.streams.video[0].average_rate == 24
    assert len(frames) == 42
    assert frames[0][..., 0].mean() > 200 and frames[30][..., 1].mean() > 200 and frames[-1].mean() < 20


def test_fit_frames_streams():
    notes = {}
    assert list(fit_frames(iter([1, 2, 3]), 5, notes, "k")) == [1, 2, 3, 3, 3] and notes["k"] == "held last frame x2"
    assert list(fit_frames(iter([1, 2, 3]), 2, notes, "k")) == [1, 2] and notes["k"] == "trimmed 1"
    with pytest.raises(ValueError):
        list(fit_frames(iter([]), 2, notes, "k"))


def test_rich_progress_follows_events(caplog):
    import io

    from rich.console import Console

    from driver.progress import RichReporter

    out = io.StringIO()
    r = RichReporter(Console(file=out, force_terminal=True, width=100))
    with r:
        r.start(2)
        r.job_skipped("S01T01-video", "unchanged")
        r.job_started("S01T02-video", 1, 5)
        r.event("execution_cached", {"nodes": ["1", "2"]})
        r.event("executing", {"node": "3"})
        r.event("progress", {"node": "3", "value": 2, "max": 4})
        assert r.progress.tasks[1].completed == 2 and r.progress.tasks[2].completed == 2
        r.event("executing", {"node": None})
        r.job_finished("S01T02-video", "done")
    assert r.progress.tasks[0].completed == 2
    assert "S01T02-video: done" in caplog.text
