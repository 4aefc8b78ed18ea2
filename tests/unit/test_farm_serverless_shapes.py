"""The serverless backend against the rebuilt worker-comfyui stand-in (the shapes of
worker-comfyui 5.8.5's handler and runpod-python 1.12.0's run_job) in front of a
scripted ComfyUI: a gate stop is found in ``output.details`` of a FAILED job and in
``output.errors`` of a COMPLETED one; the workflow goes out with ``policy=report`` so a
failed gate comes back with its card, and the scheduler retakes the shot; a missing
pack is recognised from ComfyUI's answer, old and new; a job reported ``RUNNING`` is
followed to completion; a ``/run`` whose answer is lost (read timeout, 502 after the job
was taken) starts no second job, while one RunPod surely did not take (429, no
connection) is sent again."""

from __future__ import annotations

import socket

import pytest
import yaml

from driver.errors import LostContact
from driver.farm import serverless
from driver.farm.backend import FarmOptions
from driver.farm.errors import PackMissing, ServerlessJobFailed, ServerlessSubmitUnknown
from driver.farm.serverless import EndpointClient, Journal, ServerlessExecutor
from devkit.farm_helpers import attempts, farm_run
from devkit.standins.scripted_comfy import ScriptedComfy
from devkit.standins.worker_comfyui import WorkerComfyStandIn
from tests.unit.driver_fakes import png, shot, write_storyboard
from tests.unit.test_farm_serverless import DEMO, EP1, _compiled, _dest

KEY = "rpa_SHAPES_TEST_KEY_0042"


@pytest.fixture
def endpoint():
    started = []

    def make(comfy_kw=None, **kw):
        comfy = ScriptedComfy(**(comfy_kw or {})).start()
        ep = WorkerComfyStandIn(comfy.base, api_key=KEY, **kw).start()
        started.extend([ep, comfy])
        return ep, comfy
    yield make
    for s in started:
        s.stop()


def _executor(ep, tmp_path, request_timeout=10.0) -> ServerlessExecutor:
    client = EndpointClient(ep.endpoint_id, KEY, base_url=ep.base_url, backoff_s=0.01, retries=3,
                            request_timeout=request_timeout)
    return ServerlessExecutor(client, run_id="RUN-1", job_timeout=60.0, journal=Journal(tmp_path / "jobs.json"),
                              poll_s=(0.01, 0.05))


def _stop_policy(c) -> str:
    (nid,) = [n for n, node in c.prompt.items() if node["class_type"] == "AP_QualityReport"]
    c.prompt[nid]["inputs"]["policy"] = "stop"
    return nid


@pytest.mark.parametrize("keep_on_stop", [False, True], ids=["failed-details", "completed-errors"])
def test_a_gate_stop_from_the_real_handler_is_found_where_it_puts_it(endpoint, tmp_path, monkeypatch, keep_on_stop):
    monkeypatch.setattr(serverless, "with_report_policy", lambda prompt: prompt)  # as if stop reached the worker
    ep, comfy = endpoint({"gate": lambda prompt: False, "keep_on_stop": keep_on_stop})
    ex = _executor(ep, tmp_path)
    c = _compiled(EP1, "S02T01-video", ex, tmp_path)
    _stop_policy(c)
    if keep_on_stop:  # a file saved before the gate stopped the prompt: the job is COMPLETED
        c.prompt["9001"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ap/x/early"}}
    out = ex.run_attempt(c, _dest(tmp_path))
    (job,) = ep.jobs.values()
    if keep_on_stop:
        assert job.status == "COMPLETED" and job.error is None and len(job.output["images"]) == 1
        assert "AP_QUALITY_REPORT:" in job.output["errors"][0]
    else:
        assert job.status == "FAILED" and job.error == "Job processing failed"
        assert "AP_QUALITY_REPORT:" in job.output["details"][0] and "images" not in job.output
    assert out.stopped_by_gate and not out.files
    assert out.report["passed"] is False and out.report["failed_gates"] == ["temporal"]


def test_the_report_policy_brings_a_failed_gate_back_with_its_card(endpoint, tmp_path):
    ep, comfy = endpoint({"gate": lambda prompt: False}, failed_output=False)  # FAILED jobs would lose output
    ex = _executor(ep, tmp_path)
    c = _compiled(EP1, "S02T01-video", ex, tmp_path)
    nid = _stop_policy(c)
    out = ex.run_attempt(c, _dest(tmp_path))
    assert comfy.prompts[0][nid]["inputs"]["policy"] == "report" and c.prompt[nid]["inputs"]["policy"] == "stop"
    assert [j.status for j in ep.jobs.values()] == ["COMPLETED"]
    assert not out.stopped_by_gate and out.report["passed"] is False and out.files["video"].is_file()


def test_a_gate_failure_on_the_endpoint_triggers_a_retake(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    videos = []

    def gate(prompt):  # the first video attempt fails its gate, the retake passes
        videos.append(1)
        return len(videos) > 1
    ep, comfy = endpoint({"gate": gate})
    png(tmp_path / "sb" / "a.png")
    png(tmp_path / "sb" / "b.png", colour=(10, 200, 40))
    sb = write_storyboard(tmp_path / "sb", [shot(1, 1, "standard_flf", keyframes={"first": "a.png", "last": "b.png"})])
    cfg = tmp_path / "cfg.yaml"  # a project that stops prompts at a failed gate
    cfg.write_text(yaml.safe_dump({"template_overrides": {"wan22_flf": {"Quality Report": {"policy": "stop"}}}}))
    fo = FarmOptions(endpoint=f"runpod:{ep.endpoint_id}", endpoint_base_url=ep.base_url, endpoint_slots=1,
                     health_interval_s=1.0)
    result, manifest = farm_run(tmp_path / "run", fo, storyboard=sb, config=cfg)
    assert not result.failures, result.failures
    tries = [att for _sid, jid, _job, att in attempts(manifest) if jid.endswith("-video")]
    assert [a["status"] for a in tries] == ["gate_failed", "done"]
    assert tries[0]["gate_report"]["failed_gates"] == ["temporal"] and tries[1]["gate_report"]["passed"]
    assert manifest["shots"]["S01T01"]["status"] == "done"


@pytest.mark.parametrize("new_errors", [True, False], ids=["missing_node_type", "does-not-exist"])
def test_a_missing_pack_is_recognised_from_comfyuis_answer(endpoint, tmp_path, new_errors):
    ep, comfy = endpoint({"missing": {"AP_QualityReport"}, "new_errors": new_errors})
    ex = _executor(ep, tmp_path)
    c = _compiled(EP1, "S02T01-video", ex, tmp_path)
    with pytest.raises(PackMissing, match="AP_QualityReport"):
        ex.run_attempt(c, _dest(tmp_path))
    (job,) = ep.jobs.values()
    assert job.status == "FAILED" and "Raw response:" in job.error
    if new_errors:  # the new text names the node's title; its class_type is only in the answer's structure
        assert "The custom node may not be installed" in job.error and "AP_" not in job.error.split("Raw")[0]
    else:
        assert "Cannot execute because node AP_QualityReport does not exist" in job.error


def test_a_missing_core_node_is_named_but_is_not_a_missing_pack(endpoint, tmp_path):
    ep, comfy = endpoint({"missing": {"SaveVideo"}})
    ex = _executor(ep, tmp_path)
    with pytest.raises(ServerlessJobFailed, match="no node type 'SaveVideo'") as err:
        ex.run_attempt(_compiled(EP1, "S02T01-video", ex, tmp_path), _dest(tmp_path))
    assert not isinstance(err.value, PackMissing)


def test_a_job_reported_running_is_followed_to_completion(endpoint, tmp_path):
    ep, comfy = endpoint(running_state="RUNNING", run_s=1.0)
    ex = _executor(ep, tmp_path)
    ex.queue_timeout_s = 0.3  # a RUNNING job held to the queue deadline would be cancelled as "in the queue"
    out = ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    assert out.files["video"].is_file() and ep.states.count("RUNNING") >= 2
    assert [j.status for j in ep.jobs.values()] == ["COMPLETED"]


@pytest.mark.parametrize("fault", ["slow", "502_after"])
def test_a_run_whose_answer_is_lost_starts_no_second_job(endpoint, tmp_path, fault):
    ep, comfy = endpoint(run_faults=[fault], fault_delay_s=1.5)
    ex = _executor(ep, tmp_path, request_timeout=0.5)
    with pytest.raises(ServerlessSubmitUnknown, match="not sent again"):
        ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    assert len(ep.runs) == 1 and len(ep.jobs) == 1  # RunPod took it once; nothing sent twice


def test_a_run_runpod_surely_did_not_take_is_sent_again(endpoint, tmp_path):
    ep, comfy = endpoint(run_faults=["429", "429"])
    ex = _executor(ep, tmp_path)
    out = ex.run_attempt(_compiled(DEMO, "S01T02-video", ex, tmp_path), _dest(tmp_path))
    assert out.files["video"].is_file() and len(ep.runs) == 1
    with socket.socket() as s:  # a port nothing listens on: no connection, so nothing could have arrived
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = EndpointClient("ep", KEY, base_url=f"http://127.0.0.1:{port}/v2", backoff_s=0.01, retries=1)
    with pytest.raises(LostContact):
        client.run(b"{}")
