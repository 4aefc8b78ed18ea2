"""Killing the server mid-run and restarting it: the run (a pool of one) submits the lost
job again and completes without re-rendering the shots that were finished; a model
missing on the server stops the run in preflight with every problem listed and nothing
queued."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from driver.cli import main
from driver.story.storyboard import REPO_ROOT
from devkit.harness.comfy import start_server

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"


def _manifest(run_dir):
    try:
        return json.loads((run_dir / "run_manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _job_status(m, sid, job):
    return (((m or {}).get("shots", {}).get(sid) or {}).get("jobs", {}).get(job) or {}).get("status")


def test_server_killed_mid_run_and_restarted_the_run_completes_without_rerendering(comfy_install, tmp_path):
    """One server is a pool of one: the job lost with it (restarted, history lost) is submitted again under a
    fresh prompt id once it answers, in the same run; finished shots are not rendered again, nor by a rerun."""
    base, run_dir = tmp_path / "srv", tmp_path / "run"
    server = start_server(base, install=comfy_install)
    cmd = [sys.executable, "-m", "driver", "run", str(DEMO), "--out", str(run_dir), "--plain"]
    driver = subprocess.Popen(cmd + ["--server", server.url], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:  # one clip done, another in flight
            m = _manifest(run_dir)
            videos = {sid: _job_status(m, sid, f"{sid}-video") for sid in ("S01T01", "S01T02", "S02T01")}
            done = [sid for sid, status in videos.items() if status == "done"]
            flying = [sid for sid, status in videos.items() if status == "submitted"]
            if done and flying:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the driver never had a clip in flight after another:\n{driver.communicate()[0]}")
        server.kill()
        finished, lost = done[0], flying[0]  # the pool orders jobs by critical path, not storyboard order
        first = _manifest(run_dir)["shots"][finished]["jobs"][f"{finished}-video"]["attempts"]
        server = start_server(base, install=comfy_install, port=server.port)  # restarted: history lost
        out = driver.communicate(timeout=600)[0]
        history = server.client()._json("GET", "/history")
        assert driver.returncode == 0, out + server.log_tail()
        assert main(cmd[3:] + ["--server", server.url]) == 0  # the rerun: nothing to render
        assert server.client()._json("GET", "/history") == history
    finally:
        server.kill()
        if driver.poll() is None:
            driver.kill()
    m = _manifest(run_dir)
    assert all(s["status"] == "done" for s in m["shots"].values())
    assert m["shots"][finished]["jobs"][f"{finished}-video"]["attempts"] == first  # not re-rendered
    assert not any(f"-{finished}-" in pid for pid in history)
    second = m["shots"][lost]["jobs"][f"{lost}-video"]["attempts"][0]
    assert second["submissions"] == 2 and second["prompt_id"].endswith("-r2") and second["prompt_id"] in history
    assert any("lost with" in e for e in m["farm"]["events"])  # the pool's summary says what happened


def test_missing_models_stop_the_run_in_preflight(comfy_server_factory, tmp_path, caplog):
    # A server of its own: the shared session server may hold stand-in model files that
    # other tests placed under the official names.
    server = comfy_server_factory()
    client = server.client()
    sb = tmp_path / "sb.json"
    doc = json.loads(DEMO.read_text())
    doc["shots"] = [{"scene": 1, "take": 1, "generation_approach": "held_frame_static", "duration_s": 1.0,
                     "seed": 1, "hero_prompt": "a rooftop"},
                    {"scene": 1, "take": 2, "generation_approach": "held_frame_push", "duration_s": 1.0,
                     "seed": 2, "hero_prompt": "a street"}]
    sb.write_text(json.dumps(doc))
    code = main(["run", str(sb), "--server", server.url, "--out", str(tmp_path / "run"), "--plain"])
    assert code == 8
    text = caplog.text
    assert "S01T01 S01T01-kf-hero: node 'Checkpoint' (CheckpointLoaderSimple): ckpt_name " \
           "'sd_xl_base_1.0.safetensors' is not on the server" in text
    assert "S01T02 S01T02-kf-hero" in text and "nothing was queued" in text
    assert client._json("GET", "/history") == {} and not client.queue()["queue_pending"]
