"""The serverless backend against a scripted endpoint (what ``/status`` answers is
chosen per test) and, for the HTTP client, a local HTTP stand-in: outputs decoded and
mapped to roles, the report read from the summary card or the stop message, the known
gaps (payload limit, dropped outputs, COMPLETED without output), timeouts, cancel,
journal-based recovery, and HTTP errors typed (401, 429 retried, 5xx, 404)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from anime_pipeline.core.contracts import GateResult
from anime_pipeline.core.quality.card import card_png
from anime_pipeline.core.quality.report import build_report
from driver.render.compile import REPORT, Compiler
from driver.config import load_config
from driver.errors import Cancelled, LostContact, OutputMissing
from driver.farm.backend import serverless_problems
from driver.farm.errors import (PackMissing, PayloadTooLarge, RunPodApiError, RunPodAuthError, ServerlessJobFailed,
                                ServerlessNoOutput, ServerlessTimeout)
from driver.farm.images import SERVERLESS_IMAGE
from driver.farm.runpod_endpoint import EndpointClient, parse_endpoint
from driver.farm.serverless import Journal, ServerlessExecutor
from driver.farm.worker_outputs import dropped_outputs, role_of
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard
from devkit.standins.http import JsonServer
from tests.unit.driver_fakes import _media, png

DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"
EP1 = REPO_ROOT / "storyboards" / "storyboard_ep_001.json"


class ScriptedEndpoint:
    endpoint_id = "ep-unit"

    def __init__(self, *statuses):
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.cancelled: list[str] = []
        self.on_status = None

    def run(self, body: bytes) -> str:
        self.bodies.append(json.loads(body))
        return f"job-{len(self.bodies)}"

    def status(self, job_id):
        if self.on_status:
            self.on_status()
        s = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return None if s is None else {"id": job_id, **s}

    def cancel(self, job_id):
        self.cancelled.append(job_id)


def _compiled(sb_path, job_id, ex: ServerlessExecutor, tmp_path):
    sb, cfg = load_storyboard(sb_path), load_config(None)
    job = next(j for j in make_plan(sb, cfg).jobs if j.id == job_id)
    files = {i.role: Path(i.file) if i.file else png(tmp_path / f"{i.role}.png") for i in job.inputs}
    names = ex.upload(files)
    return Compiler(sb, cfg, "RUN-1").compile(job, 1, names)


def _executor(endpoint, tmp_path, **kw) -> ServerlessExecutor:
    kw.setdefault("job_timeout", 60.0)
    return ServerlessExecutor(endpoint, run_id="RUN-1", journal=Journal(tmp_path / "farm" / "jobs.json"),
                              poll_s=(0.001, 0.002), **kw)


def _dest(tmp_path):
    def dest(role, ext):
        return tmp_path / "out" / f"{role}.{ext}"
    (tmp_path / "out").mkdir(exist_ok=True)
    return dest


def _video_file(c, data=None):
    data = data or _media("mp4", "a0b1c2", c.job.frames)  # a real MP4 with the shot's frame count
    nid = next(n for n, r in c.outputs.items() if r == "video")
    stem = c.prompt[nid]["inputs"]["filename_prefix"].rsplit("/", 1)[-1]
    return {"filename": f"{stem}_00001_.mp4", "type": "base64", "data": base64.b64encode(data).decode()}


def test_completed_job_outputs_are_decoded_and_named_and_the_body_is_the_workers(tmp_path):
    ep = ScriptedEndpoint({"status": "IN_QUEUE"}, {"status": "IN_PROGRESS", "delayTime": 1200},
                          {"status": "COMPLETED", "delayTime": 1200, "executionTime": 3400, "output": None})
    ex = _executor(ep, tmp_path)
    c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
    ep.statuses[-1]["output"] = {"images": [_video_file(c)]}
    out = ex.run_attempt(c, _dest(tmp_path))
    assert out.files["video"].read_bytes() == _media("mp4", "a0b1c2", c.job.frames)
    assert out.timings["queue_s"] == 1.2 and out.timings["execution_s"] == 3.4
    (body,) = ep.bodies
    (img,) = body["input"]["images"]
    loader = next(n for n in c.prompt.values() if n["class_type"] == "LoadImage")
    assert loader["inputs"]["image"] == img["name"] and "/" not in img["name"]  # flat: the worker has no subfolders
    hero = REPO_ROOT / "storyboards" / "demo" / "keyframes" / "rooftop_night.png"
    assert base64.b64decode(img["image"]) == hero.read_bytes()
    assert body["input"]["workflow"] == c.prompt and body["policy"]["executionTimeout"] == 60_000
    assert ex.journal.get(c.prompt_id) == "job-1"


def test_s3_outputs_are_downloaded_without_the_api_key(tmp_path):
    seen = []
    s3 = JsonServer()
    video = _media("mp4", "3c3c3c", 36)
    s3.route("GET", r"/bucket/(?P<k>.+)", lambda m, b, h: (seen.append(dict(h)) or 200, video))
    with s3:
        ep = ScriptedEndpoint({"status": "COMPLETED", "output": None})
        ex = _executor(ep, tmp_path)
        c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
        item = {**_video_file(c), "type": "s3_url", "data": f"{s3.base}/bucket/06-26/job-1/ab12cd34.mp4"}
        ep.statuses[0]["output"] = {"images": [item]}
        out = ex.run_attempt(c, _dest(tmp_path))
    assert out.files["video"].read_bytes() == video
    assert "Authorization" not in seen[0]


@pytest.mark.parametrize("output", [None, {"status": "success_no_images", "images": []}])
def test_completed_without_output_is_a_failure(tmp_path, output):
    ep = ScriptedEndpoint({"status": "COMPLETED", "output": output})
    ex = _executor(ep, tmp_path)
    with pytest.raises(ServerlessNoOutput, match="BUCKET_ENDPOINT_URL"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))


def test_files_that_match_no_output_role_are_a_failure(tmp_path):
    ep = ScriptedEndpoint({"status": "COMPLETED", "output": {"images": [
        {"filename": "ComfyUI_00001_.png", "type": "base64", "data": base64.b64encode(b"x").decode()}]}})
    ex = _executor(ep, tmp_path)
    with pytest.raises(ServerlessNoOutput, match=r"no file for \['video'\]"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))


def test_the_gate_report_comes_from_the_summary_card(tmp_path):
    gate = GateResult("temporal", False, metrics={"max_ratio": 9.0}, failed_frames=[3], reasons=["ratio 9.0 > 2.0"])
    report = build_report({"gate_1": gate}, n_frames=49, width=64, height=96, label="S02T01")
    ep = ScriptedEndpoint({"status": "COMPLETED", "output": None})
    ex = _executor(ep, tmp_path)
    c = _compiled(EP1, "S02T01-video", ex, tmp_path)
    assert REPORT in c.outputs.values()
    rid = next(n for n, r in c.outputs.items() if r == REPORT)
    card_stem = c.prompt[rid]["inputs"]["filename_prefix"].rsplit("/", 1)[-1]
    card = {"filename": f"{card_stem}_00001_.png", "type": "base64",
            "data": base64.b64encode(card_png(report)).decode()}
    ep.statuses[0]["output"] = {"images": [card, _video_file(c)], "errors": ["a warning"]}
    out = ex.run_attempt(c, _dest(tmp_path))
    assert out.report["passed"] is False and out.report["gates"][0]["failed_frames"] == [3]
    assert set(out.files) == {"video"}

    ep2 = ScriptedEndpoint({"status": "COMPLETED", "output": {"images": [_video_file(c)]}})
    with pytest.raises(OutputMissing, match="summary card"):
        _executor(ep2, tmp_path).run_attempt(c, _dest(tmp_path))


def test_a_stopped_job_carries_the_report_in_its_error(tmp_path):
    report = {"version": 1, "passed": False, "gates": [{"name": "artifact", "passed": False, "metrics": {}}]}
    error = ("Workflow execution error: Node Type: AP_QualityReport, Node ID: 40, Message: artifact failed\n"
             f"AP_QUALITY_REPORT:\n{json.dumps(report)}")
    ep = ScriptedEndpoint({"status": "FAILED", "error": error})
    ex = _executor(ep, tmp_path)
    out = ex.run_attempt(_compiled(EP1, "S02T01-video", ex, tmp_path), _dest(tmp_path))
    assert out.stopped_by_gate and out.report["passed"] is False and not out.files


def _validation_error(prompt: dict) -> str:
    """worker-comfyui 5.8.5's error for ComfyUI 0.3.64's HTTP 400 on the first pack node type it lacks."""
    nid, ctype = next((n, node["class_type"]) for n, node in prompt.items() if node["class_type"].startswith("AP_"))
    answer = {"error": {"type": "invalid_prompt", "message": f"Cannot execute because node {ctype} does not exist.",
                        "details": f"Node ID '#{nid}'", "extra_info": {}}, "node_errors": {}}
    return f"{answer['error']['message']}. Raw response: {json.dumps(answer)}"


def test_failed_jobs_are_typed(tmp_path):
    prompt = _compiled(DEMO, "S01T01-video", _executor(ScriptedEndpoint(), tmp_path), tmp_path).prompt
    error = _validation_error(prompt)  # AP_HeldFramePush
    ex = _executor(ScriptedEndpoint({"status": "FAILED", "error": error}), tmp_path)
    with pytest.raises(PackMissing, match=SERVERLESS_IMAGE.split("/")[-1]):
        ex.run_attempt(_compiled(DEMO, "S01T01-video", ex, tmp_path), _dest(tmp_path))
    wording_only = error.partition(". Raw response")[0]  # the words alone, without ComfyUI's answer: not read
    ex = _executor(ScriptedEndpoint({"status": "FAILED", "error": wording_only}), tmp_path)
    with pytest.raises(ServerlessJobFailed) as err:
        ex.run_attempt(_compiled(DEMO, "S01T01-video", ex, tmp_path), _dest(tmp_path))
    assert not isinstance(err.value, PackMissing)
    uncaught = json.dumps({"error_type": "RuntimeError", "error_message": "CUDA out of memory", "hostname": "w1"})
    ex = _executor(ScriptedEndpoint({"status": "FAILED", "error": uncaught}), tmp_path)
    with pytest.raises(ServerlessJobFailed, match="CUDA out of memory"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    ex = _executor(ScriptedEndpoint({"status": "TIMED_OUT"}), tmp_path)
    with pytest.raises(ServerlessTimeout, match="timed out"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))


def test_a_job_past_its_deadline_is_cancelled(tmp_path):
    ep = ScriptedEndpoint({"status": "IN_PROGRESS"})
    ex = _executor(ep, tmp_path, job_timeout=0.0)
    with pytest.raises(ServerlessTimeout, match="was cancelled"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    assert ep.cancelled == ["job-1"]
    ep = ScriptedEndpoint({"status": "IN_QUEUE"})
    ex = _executor(ep, tmp_path, queue_timeout_s=0.0)
    with pytest.raises(ServerlessTimeout, match="in the queue"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))


def test_ctrl_c_cancels_the_jobs_in_flight(tmp_path):
    ep = ScriptedEndpoint({"status": "IN_PROGRESS"})
    ex = _executor(ep, tmp_path)
    ep.on_status = lambda: threading.Thread(target=ex.cancel_all).start()
    with pytest.raises(Cancelled):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    assert "job-1" in ep.cancelled


def test_an_input_too_large_for_run_is_refused_before_sending(tmp_path):
    ep = ScriptedEndpoint({"status": "COMPLETED", "output": None})
    ex = _executor(ep, tmp_path)
    c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG" + bytes(8_000_000))
    name = next(iter(ex.upload({"hero": big}).values()))
    loader = next(n for n in c.prompt.values() if n["class_type"] == "LoadImage")
    loader["inputs"]["image"] = name
    with pytest.raises(PayloadTooLarge, match="10 MB"):
        ex.run_attempt(c, _dest(tmp_path))
    assert not ep.bodies


def test_a_job_in_flight_is_asked_about_not_paid_for_twice(tmp_path):
    ep = ScriptedEndpoint({"status": "IN_PROGRESS"}, {"status": "COMPLETED", "output": None})
    ex = _executor(ep, tmp_path)
    c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
    ep.statuses[-1]["output"] = {"images": [_video_file(c)]}
    ex.journal.record(c.prompt_id, "ep-unit", "job-earlier")
    again = Journal(tmp_path / "farm" / "jobs.json")  # as a rerun reads it
    assert again.get(c.prompt_id) == "job-earlier"
    out = _executor(ep, tmp_path).run_attempt(c, _dest(tmp_path), in_flight=True)
    assert out.files["video"].is_file() and not ep.bodies

    ep2 = ScriptedEndpoint(None, {"status": "COMPLETED", "output": {"images": [_video_file(c)]}})
    resubmitted = []
    _executor(ep2, tmp_path).run_attempt(c, _dest(tmp_path), in_flight=True,
                                         resubmit=lambda: resubmitted.append(1) or c)
    assert resubmitted == [1] and len(ep2.bodies) == 1  # RunPod forgot it: sent again


def test_preflight_refuses_outputs_the_worker_drops(tmp_path):
    ex = _executor(ScriptedEndpoint({"status": "IN_QUEUE"}), tmp_path)
    c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
    assert dropped_outputs(c.prompt, c.outputs) == [] and serverless_problems([c]) == []
    nid = next(n for n, r in c.outputs.items() if r == "video")
    c.prompt[nid]["class_type"] = "VHS_VideoCombine"
    (problem,) = serverless_problems([c])
    assert "VHS_VideoCombine" in problem and "does not return" in problem and c.job.id in problem


def test_role_matching_prefers_the_longest_prefix():
    prefixes = {"S01-video_a1_video_": "video", "S01-video_a1_video_extra_": "extra"}
    assert role_of("S01-video_a1_video_extra_00001_.mp4", prefixes) == "extra"
    assert role_of("S01-video_a1_video_00001_.mp4", prefixes) == "video"
    assert role_of("other.png", prefixes) is None


def test_endpoint_spec_parsing():
    assert parse_endpoint("runpod:abc123") == "abc123"
    for bad in ("abc123", "runpod:", "runpod:a/b"):
        with pytest.raises(Exception, match="runpod:ENDPOINT_ID"):
            parse_endpoint(bad)


# ---------------------------------------------------------------------- HTTP client
class FlakyEndpoint(JsonServer):
    def __init__(self, script: list[tuple[int, dict]]):
        super().__init__()
        self.script = script
        self.route("POST", r"/v2/ep/run", self._next)
        self.route("GET", r"/v2/ep/status/(?P<j>.+)", self._next)

    def _next(self, m, body, headers):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


def _client(server, key="rpa_KEY_abcdef123456"):
    return EndpointClient("ep", key, base_url=f"{server.base}/v2", backoff_s=0.001, retries=3)


def test_http_client_retries_429_and_5xx_then_types_errors():
    with FlakyEndpoint([(429, {}), (429, {}), (200, {"id": "j1", "status": "IN_QUEUE"})]) as s:
        assert _client(s).run(b"{}") == "j1"  # 429: RunPod did not take it, sent again
    with FlakyEndpoint([(503, {}), (502, {}), (200, {"id": "j1", "status": "IN_QUEUE"})]) as s:
        assert _client(s).status("j1")["id"] == "j1"  # a status read is asked again after 5xx
    with FlakyEndpoint([(400, {"error": "bad"})]) as s:
        with pytest.raises(RunPodApiError, match="HTTP 400"):
            _client(s).run(b"{}")
    with FlakyEndpoint([(401, {"error": "Unauthorized"})]) as s:
        with pytest.raises(RunPodAuthError) as err:
            _client(s).status("j1")
        assert "rpa_KEY" not in str(err.value)
    with FlakyEndpoint([(404, {"error": "job not found"})]) as s:
        assert _client(s).status("gone") is None
    s = FlakyEndpoint([(200, {})]).start()
    url = s.base
    s.stop()
    with pytest.raises(LostContact):
        EndpointClient("ep", "k" * 10, base_url=f"{url}/v2", backoff_s=0.001, retries=1).health()


def test_every_returned_file_is_verified(tmp_path):
    ep = ScriptedEndpoint({"status": "COMPLETED", "output": None})
    ex = _executor(ep, tmp_path)
    c = _compiled(DEMO, "S01T02-video", ex, tmp_path)
    ep.statuses[0]["output"] = {"images": [_video_file(c, _media("mp4", "a0b1c2", c.job.frames - 1))]}
    with pytest.raises(OutputMissing, match=f"expected {c.job.frames}"):
        ex.run_attempt(c, _dest(tmp_path))
