"""RunPod Serverless path against a local stand-in of a worker-comfyui endpoint whose
ComfyUI is a real CPU server: the demo storyboard renders end to end (base64 and S3
outputs), every file hash-verified, a rerun submits nothing, a job over its deadline is
cancelled (the shot fails, the others finish), and the API key stays out of the
manifest and the logs."""

from __future__ import annotations

import logging
import threading

import pytest

from driver.farm.backend import FarmOptions
from devkit.farm_helpers import assert_complete_and_verified, attempts, farm_run
from devkit.standins.worker_comfyui import WorkerComfyStandIn

pytestmark = pytest.mark.integration

KEY = "rpa_SERVERLESS_TEST_KEY_42"


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)


def _options(standin, **kw) -> FarmOptions:
    return FarmOptions(endpoint=f"runpod:{standin.endpoint_id}", endpoint_base_url=standin.base_url,
                       endpoint_slots=2, health_interval_s=1.0, **kw)


def test_demo_renders_on_the_endpoint_and_resumes(comfy, tmp_path, key_env, caplog):
    caplog.set_level(logging.DEBUG)
    with WorkerComfyStandIn(comfy.url, api_key=KEY) as standin:
        run_dir = tmp_path / "run"
        result, manifest = farm_run(run_dir, _options(standin))
        assert not result.failures, result.failures
        assert_complete_and_verified(manifest, run_dir, list(manifest["shots"]))
        for _sid, _jid, _job, att in attempts(manifest):
            assert att["server"] == f"runpod:{standin.endpoint_id}" and att["timings"]["execution_s"] is not None
        sent = len(standin.runs)
        assert sent == sum(1 for _ in attempts(manifest))
        # every input went base64 in the body, under the flat name the workflow loads
        for body in standin.runs:
            names = {i["name"] for i in body["input"].get("images", [])}
            loads = {n["inputs"]["image"] for n in body["input"]["workflow"].values() if n["class_type"] == "LoadImage"}
            assert loads == names
        again, _ = farm_run(run_dir, _options(standin))
        assert again.rendered == 0 and len(standin.runs) == sent  # rerun: nothing submitted
    text = (run_dir / "run_manifest.json").read_text() + caplog.text
    assert KEY not in text


def test_s3_outputs_and_a_job_over_its_deadline(comfy, tmp_path, key_env):
    with WorkerComfyStandIn(comfy.url, api_key=KEY, s3=True) as standin:
        result, manifest = farm_run(tmp_path / "s3", _options(standin), only=["S01T02"])
        assert not result.failures
        assert_complete_and_verified(manifest, tmp_path / "s3", ["S01T02"])
        assert standin.s3_store  # the video came back as an s3_url

    hold = threading.Event()  # jobs never start: the queue deadline passes and the job is cancelled
    with WorkerComfyStandIn(comfy.url, api_key=KEY, hold=hold) as standin:
        fo = _options(standin)
        try:
            result, manifest = farm_run(tmp_path / "late", fo, only=["S01T02"],
                                        on_backend=lambda ex: _short_queue(ex))
        finally:
            hold.set()
        assert result.failures["S01T02"]["code"] == "serverless_timeout"
        assert [j.status for j in standin.jobs.values()] == ["CANCELLED"]


def _short_queue(executor) -> None:
    for member in executor.pool.members.values():
        member.executor.queue_timeout_s = 0.5


def test_a_wrong_key_is_a_clear_error_without_the_key(comfy, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_WRONG_KEY_0000000")
    from driver.farm.errors import RunPodAuthError
    with WorkerComfyStandIn(comfy.url, api_key=KEY) as standin:
        with pytest.raises(RunPodAuthError) as err:
            farm_run(tmp_path / "run", _options(standin))
    assert "WRONG_KEY" not in str(err.value) and "RUNPOD_API_KEY" in str(err.value)
