"""Gating and retiming inside a real ComfyUI: PNG frames of real clips -> LoadImage +
ImageBatch -> AP_MotionGate -> AP_AnimeRetime -> CreateVideo (fps from the retime) ->
SaveVideo; the saved MP4 has the expected frame count and rate."""

from __future__ import annotations

import pytest
from PIL import Image

from devkit.groundtruth import build as gt
from devkit.harness.media import saved_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(gt.missing_reason() is not None, reason=str(gt.missing_reason())),
]


def _clip_frames():
    """Real drawings: A A B C (one shot), then X X Y (another shot): hold, motion, motion, cut,
    hold, motion."""
    a = gt.shots("image_to_video_wan-1")[0]
    x = gt.shots("text_to_video_wan-1")[0]
    frames = [a[0], a[0], a[1], a[2], x[0], x[0], x[1]]
    return [gt.cover_resize(f, (128, 96)) for f in frames]


def _prompt(names: list[str], fps_out: float, mode: str) -> dict:
    p: dict = {}
    for i, name in enumerate(names):
        p[f"load{i}"] = {"class_type": "LoadImage", "inputs": {"image": name}}
    batch = ["load0", 0]
    for i in range(1, len(names)):
        p[f"batch{i}"] = {"class_type": "ImageBatch", "inputs": {"image1": batch, "image2": [f"load{i}", 0]}}
        batch = [f"batch{i}", 0]
    p["gate"] = {"class_type": "AP_MotionGate", "inputs": {
        "frames": batch, "cut_color": 5.0, "cut_residual": 0.63, "hold_threshold": 3.5,
        "adaptive_holds": False, "adaptive_factor": 4.5}}
    p["retime"] = {"class_type": "AP_AnimeRetime", "inputs": {
        "frames": batch, "fps_in": 16.0, "fps_out": fps_out, "mode": mode, "labels": ["gate", 0]}}
    p["report"] = {"class_type": "PreviewAny", "inputs": {"source": ["gate", 1]}}
    p["video"] = {"class_type": "CreateVideo", "inputs": {"images": ["retime", 0], "fps": ["retime", 1]}}
    p["save"] = {"class_type": "SaveVideo", "inputs": {
        "video": ["video", 0], "filename_prefix": f"motion/retime_{mode}", "format": "auto", "codec": "auto"}}
    return p


@pytest.mark.parametrize("fps_out,mode,expected", [(24.0, "keep_holds", 10), (32.0, "smooth", 13)])
def test_gate_and_retime_write_a_video_at_the_new_rate(comfy, tmp_path, fps_out, mode, expected):
    names = []
    for i, frame in enumerate(_clip_frames()):
        path = tmp_path / f"motion_frame_{i}.png"
        Image.fromarray(frame).save(path)
        names.append(comfy.client.upload_image(path, subfolder="motion_graphs"))
    events = []
    entry = comfy.client.run(_prompt(names, fps_out, mode), timeout=300, on_event=lambda kind, data: events.append((kind, data)))

    report = entry["outputs"]["report"]["text"][0]
    assert '"labels": ["hold", "motion", "motion", "cut", "hold", "motion"]' in report
    assert any(kind == "progress" and data.get("node") == "retime" for kind, data in events)

    video = saved_video(comfy.client, entry, tmp_path)
    assert video.fps == pytest.approx(fps_out)
    assert video.size == (128, 96)
    assert video.frames == expected
