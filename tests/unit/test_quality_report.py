"""Quality report: JSON format (schema), summary line, stop message round trip, summary
card PNG, and the AP_QualityReport node with a stand-in folder_paths."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from anime_pipeline.core.contracts import GateResult
from anime_pipeline.core.quality import card as C
from anime_pipeline.core.quality import report as R
from anime_pipeline.nodes.quality import QualityReport

PASS = GateResult("artifact", True, {"n_frames": 9, "max_motion": 12.5}, {"frozen_motion": 3.0})
FAIL = GateResult("temporal", False, {"n_frames": 9, "max_flicker": np.float64(0.034), "flicker_frames": [3, 7]},
                  {"max_flicker": 0.016}, failed_frames=[3, 7],
                  reasons=["brightness flicker above 1.6% on frame(s) [3, 7] (largest 3.4%)"],
                  notes=["skipped cut interval(s) [5]"])


def frames(n=9, h=24, w=40):
    return torch.rand(n, h, w, 3)


def test_report_follows_its_schema_and_lists_failures_in_input_order():
    rep = R.build_report({"gate_2": PASS, "gate_5": FAIL}, n_frames=9, width=40, height=24, policy="stop",
                         label="shot_010", node="7")
    R.validate_report(rep)
    assert rep["version"] == 1 and rep["passed"] is False and rep["failed_gates"] == ["temporal"]
    assert [g["input"] for g in rep["gates"]] == ["gate_2", "gate_5"]
    assert rep["gates"][1]["metrics"]["max_flicker"] == 0.034 and isinstance(rep["gates"][1]["metrics"]["max_flicker"], float)
    assert rep["summary"] == ("quality FAILED: 1 of 2 gate(s) failed: temporal (gate_5): brightness flicker above "
                              "1.6% on frame(s) [3, 7] (largest 3.4%)")
    assert json.loads(R.to_json(rep)) == rep


def test_schema_rejects_a_malformed_report():
    rep = R.build_report({"gate_1": PASS}, n_frames=9, width=40, height=24)
    for broken in ({**rep, "version": 2}, {k: v for k, v in rep.items() if k != "gates"},
                   {**rep, "gates": [{**rep["gates"][0], "input": "gate_9"}]}):
        with pytest.raises(jsonschema.ValidationError):
            R.validate_report(broken)


def test_non_finite_metrics_become_null():
    g = GateResult("x", True, {"v": float("nan"), "w": [np.float32(np.inf)]})
    rep = R.build_report({"gate_1": g}, n_frames=1, width=1, height=1)
    assert rep["gates"][0]["metrics"] == {"v": None, "w": [None]}
    R.to_json(rep)  # strict JSON: would raise on NaN


def test_stop_message_starts_with_the_summary_and_carries_the_report():
    rep = R.build_report({"gate_1": FAIL}, n_frames=9, width=40, height=24, policy="stop")
    text = str(R.QualityStop(rep))
    lines = text.splitlines()
    assert lines[0] == rep["summary"] and "temporal" in lines[0] and "3.4%" in lines[0]
    assert lines[1] == "AP_QUALITY_REPORT:"
    assert R.parse_stop_message(text) == rep
    assert R.parse_stop_message("some other error") is None


def test_card_png_carries_the_full_report():
    rep = R.build_report({"gate_1": PASS, "gate_2": FAIL}, n_frames=9, width=40, height=24, label="shot_010")
    png = C.card_png(rep)
    assert C.read_card(png) == rep
    img = np.asarray(Image.open(__import__("io").BytesIO(png)))
    assert img.shape[1] == C.WIDTH and img.shape[0] > 100
    red = (np.abs(img.astype(int) - C.RED).sum(axis=-1) < 60).sum()
    assert red > 50, "a failed report draws red text"


def test_headline_flattens_nested_metrics():
    g = {"metrics": {"n_frames": 3, "start": {"frame": 0, "ssim": 0.91234}, "seams": [{"seam_index": 4, "luma_jump": 2.5}]}}
    assert C.headline(g) == "start.ssim=0.9123  seams[0].luma_jump=2.5"


@pytest.fixture
def output_dir(tmp_path, monkeypatch):
    """Stand-in folder_paths writing into tmp_path (ComfyUI's get_save_image_path contract)."""
    def get_save_image_path(prefix, out, w, h):
        sub, name = os.path.split(prefix)
        folder = os.path.join(out, sub)
        os.makedirs(folder, exist_ok=True)
        return folder, name, 1, sub, prefix

    monkeypatch.setitem(sys.modules, "folder_paths", SimpleNamespace(
        get_output_directory=lambda: str(tmp_path), get_save_image_path=get_save_image_path))
    return tmp_path


def test_node_reports_passes_frames_through_and_saves_the_card(output_dir):
    x = frames()
    out = QualityReport().collect(x, "report", "shot_010", "ap_quality/card", unique_id="12", gate_1=PASS, gate_3=FAIL)
    got_frames, text, passed = out["result"]
    assert got_frames is x and passed is False
    (rep,) = out["ui"]["ap_quality_report"]
    assert json.loads(text) == rep and rep["node"] == "12" and rep["label"] == "shot_010"
    (img,) = out["ui"]["images"]
    assert img == {"filename": "card_00001_.png", "subfolder": "ap_quality", "type": "output"}
    assert C.read_card(output_dir / "ap_quality" / "card_00001_.png") == rep


def test_node_stop_policy_raises_with_the_report_and_writes_nothing(output_dir):
    with pytest.raises(R.QualityStop) as err:
        QualityReport().collect(frames(), "stop", "", "ap_quality/card", gate_1=PASS, gate_2=FAIL)
    assert str(err.value).splitlines()[0].startswith("quality FAILED: 1 of 2 gate(s) failed: temporal (gate_2)")
    assert R.parse_stop_message(str(err.value))["failed_gates"] == ["temporal"]
    assert not any(output_dir.rglob("*.png"))


def test_node_stop_policy_continues_when_everything_passed(output_dir):
    out = QualityReport().collect(frames(), "stop", "", "ap_quality/card", gate_1=PASS)
    assert out["result"][2] is True


def test_node_rejects_what_is_not_a_gate_result(output_dir):
    with pytest.raises(ValueError, match=r"AP_QualityReport\.gate_4: expected AP_GATE_RESULT from a quality gate, got dict"):
        QualityReport().collect(frames(), "report", "", "x", gate_4={"passed": True})
