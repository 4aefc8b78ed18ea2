"""Faults and bad inputs against a real ComfyUI: damaged run-folder copies are detected and
the storyboard's images stay byte-identical; a keyframe swapped for a symlink mid-run is
refused; two drivers on one folder (the second refused, naming the first); disk full (a
small tmpfs) and a read-only run folder (a read-only bind mount) give their exit codes and
a resumable run; bad node inputs over ``/prompt`` get a node error naming the input; the
OOM case is refused before allocation and the server keeps serving; the storyboard schema's
bounds are checked against the server's ``/object_info``."""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from driver.cli import main
from driver.comfy.client import ComfyClient
from driver.errors import ExecutionFailed, PromptRejected
from driver.outputs.assets import Assets
from driver.story.storyboard import REPO_ROOT
from tests.unit.test_schema_bounds import BOUND, bound_problems, input_spec

pytestmark = pytest.mark.integration


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _storyboard(folder: Path, shots: int = 2) -> Path:
    (folder / "keyframes").mkdir(parents=True, exist_ok=True)
    for i in range(shots):
        Image.new("RGB", (64, 64), (40 * i + 30, 90, 200 - 40 * i)).save(folder / "keyframes" / f"hero{i}.png")
    doc = {"version": 3, "project": "HRD", "episode": 1, "delivery": {"width": 64, "height": 64, "fps": 8},
           "model_profile": "wan22_sdxl",
           "shots": [{"scene": 1, "take": i + 1, "generation_approach": "held_frame_static", "duration_s": 0.5,
                      "seed": i, "keyframes": {"hero": f"keyframes/hero{i}.png"}} for i in range(shots)]}
    path = folder / "sb.json"
    path.write_text(json.dumps(doc))
    return path


def _config(folder: Path, url: str, **extra) -> Path:
    path = folder / "cfg.yaml"
    path.write_text(json.dumps({"servers": [url], "local_comfyui": "none", **extra}))
    return path


def _argv(sb: Path, cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(sb), "--config", str(cfg), "--out", str(out), "--plain", *extra]


def _manifest(out: Path) -> dict:
    return json.loads((out / "run_manifest.json").read_text())


def _statuses(out: Path) -> dict[str, str]:
    return {sid: s["status"] for sid, s in _manifest(out)["shots"].items()}


@pytest.fixture()
def project(tmp_path, comfy):
    src = tmp_path / "board"
    sb = _storyboard(src)
    return sb, _config(src, comfy.url), tmp_path / "run"


def test_damaged_copies_are_detected_and_the_storyboard_images_stay_byte_identical(project, caplog):
    sb, cfg, out = project
    sources = {p: _sha(p) for p in sorted((sb.parent / "keyframes").glob("*.png"))}
    assert main(_argv(sb, cfg, out)) == 0
    copies = sorted((out / "keyframes").glob("*_hero.png"))
    assert len(copies) == 2
    for copy in copies:
        assert copy.stat().st_nlink == 1  # a copy, never a hard link of the storyboard's image
        with open(copy, "r+b") as fh:  # damage the run folder's copy (as in the first wave)
            fh.truncate(copy.stat().st_size // 3)
    (out / "keyframes" / ".stale.png.12345.part").write_bytes(b"left by a killed writer")
    caplog.clear()
    assert main(_argv(sb, cfg, out)) == 0
    assert {p: _sha(p) for p in sources} == sources  # the storyboard's images are untouched
    assert caplog.text.count("is damaged (size or sha256 differ); copied again") == 2
    assert {_sha(c) for c in copies} == set(sources.values())  # copies restored from the sources
    assert not (out / "keyframes" / ".stale.png.12345.part").exists()  # stale parts removed at start
    assert set(_statuses(out).values()) == {"done"}


def test_a_keyframe_swapped_for_a_symlink_mid_run_is_refused(project, comfy, monkeypatch, caplog):
    sb, cfg, out = project
    outside = sb.parent.parent / "secret.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(outside)
    target = sb.parent / "keyframes" / "hero1.png"
    image = target.read_bytes()
    original = Assets.input_files

    def swap_then_give(self, job):  # after the storyboard was checked and its images copied
        files = original(self, job)
        if job.shot == "S01T02" and not target.is_symlink():
            target.unlink()
            target.symlink_to(outside)
        return files

    monkeypatch.setattr(Assets, "input_files", swap_then_give)
    assert main(_argv(sb, cfg, out)) == 26
    assert "hero1.png: it is now a symlink (replaced during the run?); nothing was uploaded" in caplog.text
    uploaded = [p for p in comfy.input_dir.rglob("*.png") if _sha(p) == _sha(outside)]
    assert uploaded == []  # the outside file never reached the server
    assert not any(p.is_symlink() for p in out.rglob("*"))  # and no symlink in the run folder
    monkeypatch.undo()
    target.unlink()
    target.write_bytes(image)  # the storyboard's image back in place: the same command resumes
    assert main(_argv(sb, cfg, out)) == 0
    assert set(_statuses(out).values()) == {"done"}


def _hanging_server() -> tuple[socket.socket, str]:
    """A TCP port that accepts connections and never answers: a driver talking to it waits."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_two_drivers_on_one_folder_the_second_is_refused_naming_the_first(project, comfy, caplog):
    sb, cfg, out = project
    sock, hang = _hanging_server()
    slow_cfg = _config(sb.parent.parent, hang, timeouts={"request_s": 60})
    first = subprocess.Popen([sys.executable, "-m", "driver", *_argv(sb, slow_cfg, out)], cwd=REPO_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while f'"pid": {first.pid}' not in ((out / ".driver.lock").read_text() if (out / ".driver.lock").exists()
                                           else ""):
            assert time.monotonic() < deadline and first.poll() is None, "the first driver never took the lock"
            time.sleep(0.2)
        assert main(_argv(sb, cfg, out)) == 25
        assert f"is in use by pid {first.pid} on {socket.gethostname()}" in caplog.text
        assert f"driver run {sb}" in caplog.text
    finally:
        first.kill()
        first.wait()
        sock.close()
    assert main(_argv(sb, cfg, out)) == 0  # the killed holder's lock is taken over; the run completes
    assert set(_statuses(out).values()) == {"done"}


@pytest.fixture()
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # the file system is full
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_gives_its_exit_code_and_a_resumable_run(project, small_tmpfs, caplog):
    sb, cfg, _ = project
    out = small_tmpfs / "run"
    assert main(_argv(sb, cfg, out, "--only", "S01T01")) == 0
    filler = _fill(small_tmpfs)
    caplog.clear()
    assert main(_argv(sb, cfg, out)) == 17
    assert "disk_full:" in caplog.text and "No space left on device" in caplog.text and str(out) in caplog.text
    assert "Traceback" not in caplog.text
    filler.unlink()
    assert main(_argv(sb, cfg, out)) == 0  # space freed: the same command resumes
    assert set(_statuses(out).values()) == {"done"}


def test_a_read_only_run_folder_gives_its_exit_code_even_for_a_no_op_rerun(project, caplog):
    sb, cfg, out = project
    assert main(_argv(sb, cfg, out, "--only", "S01T01")) == 0
    if subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (not root?)")
    try:
        assert subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], capture_output=True).returncode == 0
        before = _sha(out / "run_manifest.json")
        assert main(_argv(sb, cfg, out, "--only", "S01T01")) == 18  # nothing to render, still refused cleanly
        assert "not_writable:" in caplog.text and "Read-only file system" in caplog.text
        assert main(_argv(sb, cfg, out)) == 18
        assert _sha(out / "run_manifest.json") == before
    finally:
        subprocess.run(["umount", str(out)], check=False)
    assert main(_argv(sb, cfg, out)) == 0  # writable again: the run resumes
    assert set(_statuses(out).values()) == {"done"}


# ---------------------------------------------------------------------- node inputs over /prompt
def _graph(node: str, inputs: dict, image: dict | None = None) -> dict:
    g = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x336699}},
         "2": {"class_type": node, "inputs": {**({"image": ["1", 0]} if image is None else image), **inputs}}}
    g["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    return g


PUSH = {"duration_s": 0.5, "fps": 8.0, "width": 32, "height": 32, "zoom_start": 1.0, "zoom_end": 1.1,
        "center_x_start": 0.5, "center_y_start": 0.5, "center_x_end": 0.5, "center_y_end": 0.5,
        "easing": "linear", "sampling": "bilinear"}


def push(**kw) -> dict:
    return _graph("AP_HeldFramePush", {**PUSH, **kw})


def triptych(**kw) -> dict:
    g = _graph("AP_TriptychSplit", {"mode": "thirds", **kw}, image={"strip": ["1", 0]})
    g["1"]["inputs"]["width"] = 96
    return g


def retime(**kw) -> dict:
    g = _graph("AP_AnimeRetime", {"fps_in": 16.0, "fps_out": 24.0, "mode": "smooth", **kw}, image={"frames": ["1", 0]})
    g["1"]["inputs"]["batch_size"] = 3
    return g


#: (id, graph, "rejected" with the node error type | "failed" with the exception text), the named input
NODE_CASES = [
    ("push-width-negative", push(width=-2), "rejected", "value_smaller_than_min", "width"),
    ("push-width-huge", push(width=20000), "rejected", "value_bigger_than_max", "width"),
    ("push-fps-zero", push(fps=0.0), "rejected", "value_smaller_than_min", "fps"),
    ("push-zoom-zero", push(zoom_end=0.0), "rejected", "value_smaller_than_min", "zoom_end"),
    ("push-easing", push(easing="bounce"), "rejected", "value_not_in_list", "easing"),
    ("push-duration-text", push(duration_s="abc"), "rejected", "invalid_input_type", "duration_s"),
    ("push-duration-tiny", push(duration_s=0.01), "failed", "AP_HeldFramePush.duration_s", "duration_s"),
    ("push-budget-negative", push(memory_budget_mb=-1), "rejected", "value_smaller_than_min", "memory_budget_mb"),
    ("push-over-budget", push(width=4096, height=4096, memory_budget_mb=1), "failed",
     "AP_HeldFramePush.width: 4 frames of 4096x4096 need 0.75 GiB, over the 0.00 GiB budget", "width"),
    ("push-image-missing", {"2": {"class_type": "AP_HeldFramePush", "inputs": PUSH},
                            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}},
     "rejected", "required_input_missing", "image"),
    ("push-image-wrong-type", {**push(image=["4", 1]), "4": push()["2"]}, "rejected", "return_type_mismatch",
     "image"),
    ("triptych-mode", triptych(mode="quarters"), "rejected", "value_not_in_list", "mode"),
    ("triptych-trim-huge", triptych(trim_margin=600), "rejected", "value_bigger_than_max", "trim_margin"),
    ("triptych-trim-all", triptych(trim_margin=40), "failed", "AP_TriptychSplit.trim_margin", "trim_margin"),
    ("triptych-over-budget", triptych(target_width=4096, target_height=4096, memory_budget_mb=1), "failed",
     "AP_TriptychSplit.target_width: 1 strip(s) of three 4096x4096 panels", "target_width"),
    ("retime-fps-zero", retime(fps_out=0.0), "rejected", "value_smaller_than_min", "fps_out"),
    ("retime-mode", retime(mode="blend"), "rejected", "value_not_in_list", "mode"),
    ("retime-over-budget", retime(fps_in=1.0, fps_out=1000.0, memory_budget_mb=1), "failed",
     "AP_AnimeRetime.fps_out: 2001 output frames of 32x32", "fps_out"),
]


def _refusal(client: ComfyClient, graph: dict) -> tuple[str, str]:
    try:
        client.run(graph, timeout=120)
    except PromptRejected as exc:
        return "rejected", json.dumps(exc.flat_errors())
    except ExecutionFailed as exc:
        return "failed", exc.exception_message
    return "ran", ""


@pytest.mark.parametrize("cid,graph,kind,expect,name", NODE_CASES, ids=[c[0] for c in NODE_CASES])
def test_bad_node_input_gets_a_node_error_naming_it(comfy, cid, graph, kind, expect, name):
    got_kind, text = _refusal(comfy.client, graph)
    assert got_kind == kind and expect in text and name in text, text
    assert "Traceback" not in text.split("\n")[0]
    comfy.client.system_stats()  # still serving


def test_the_oom_case_is_refused_before_allocation_and_the_server_stays_up(comfy):
    """16384x16384 frames (every widget within its limits) for more seconds than the server's
    free memory holds: refused with the size and the budget (the check runs before the output
    is allocated); a follow-up prompt runs."""
    free = comfy.client.system_stats()["system"]["ram_free"]
    frame = 16384 * 16384 * 3 * 4
    seconds = min(600, math.ceil(free / frame) + 1)
    kind, text = _refusal(comfy.client, push(width=16384, height=16384, duration_s=float(seconds), fps=1.0))
    assert kind == "failed" and f"AP_HeldFramePush.width: {seconds} frames of 16384x16384 need" in text, text
    assert "budget (80% of the" in text and "free on cpu" in text
    assert _refusal(comfy.client, push()) == ("ran", "")  # the follow-up prompt
    assert comfy.client.system_stats()["system"]["ram_free"] > 0


def test_schema_bounds_against_the_servers_object_info(comfy):
    info = comfy.client.object_info()
    problems, checked = [], 0
    for keys, targets in BOUND.items():
        for class_type, name in targets:
            assert class_type in info, f"{class_type} is not on the server"
            opts = input_spec(info, class_type, name)
            assert opts is not None, f"{class_type} has no input {name!r}"
            problems += bound_problems(keys, class_type, name, opts)
            checked += 1
    assert problems == [] and checked >= 20
