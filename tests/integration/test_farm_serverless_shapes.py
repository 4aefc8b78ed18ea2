"""What the rebuilt worker-comfyui stand-in returns when its ComfyUI is the real CPU
server (0.3.64) with the pack: a quality gate that stops the prompt comes back FAILED
with the generic error and the report in ``output.details`` (as worker-comfyui 5.8.5's
handler and runpod-python 1.12.0's run_job shape it), where the driver finds it; a node
type ComfyUI lacks comes back as its 400 answer, from which the driver reads the
``class_type``."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

from driver.farm.worker_outputs import failure_texts, missing_node
from driver.outputs.quality import parse_report_from_error
from devkit.standins.worker_comfyui import WorkerComfyStandIn

pytestmark = pytest.mark.integration

KEY = "rpa_SHAPES_INTEGRATION_KEY_1"


def _black_png() -> str:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _finish(standin: WorkerComfyStandIn, workflow: dict, images: list[dict]) -> dict:
    headers = {"Authorization": f"Bearer {KEY}"}
    url = f"{standin.base_url}/{standin.endpoint_id}"
    job = requests.post(f"{url}/run", json={"input": {"workflow": workflow, "images": images}}, headers=headers,
                        timeout=30).json()["id"]
    for _ in range(1200):
        status = requests.get(f"{url}/status/{job}", headers=headers, timeout=30).json()
        if status["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job} never finished: {status}")


def test_a_real_gate_stop_comes_back_failed_with_the_report_in_details(comfy):
    name = "ap_shapes_black.png"
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "AP_ArtifactGate", "inputs": {
            "frames": ["1", 0], "black_fraction": 0.5, "min_luma_std": 0.02, "max_exposure_jump": 0.2,
            "max_clipped_increase": 0.2, "min_sharpness_ratio": 0.6, "min_sharpness": 1e-4, "frozen_motion": 3.0,
            "expect_motion": False}},
        "3": {"class_type": "AP_QualityReport", "inputs": {
            "frames": ["2", 0], "gate_1": ["2", 1], "policy": "stop", "label": "shapes",
            "filename_prefix": "ap_shapes/card"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "ap_shapes/after"}},
    }
    with WorkerComfyStandIn(comfy.url, api_key=KEY) as standin:
        status = _finish(standin, workflow, [{"name": name, "image": _black_png()}])
    assert status["status"] == "FAILED" and status["error"] == "Job processing failed", status
    (detail,) = status["output"]["details"]
    assert detail.startswith("Workflow execution error: Node Type: AP_QualityReport, Node ID: 3, Message: quality")
    reports = [parse_report_from_error(t) for t in failure_texts(status) if "AP_QUALITY_REPORT:" in t]
    assert reports and reports[0]["passed"] is False and reports[0]["failed_gates"] == ["artifact"]


def test_a_missing_node_type_is_read_from_comfyuis_answer(comfy):
    workflow = {"1": {"class_type": "AP_NoSuchNode", "inputs": {}, "_meta": {"title": "Not Here"}}}
    with WorkerComfyStandIn(comfy.url, api_key=KEY) as standin:
        status = _finish(standin, workflow, [])
    assert status["status"] == "FAILED" and "output" not in status
    assert "Raw response: " in status["error"]
    answer = json.loads(status["error"].split("Raw response: ", 1)[1])
    assert answer["node_errors"] == {} and answer["error"]["details"] == "Node ID '#1'"
    assert missing_node(failure_texts(status), workflow) == "AP_NoSuchNode"
