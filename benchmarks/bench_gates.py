"""Frames per second of each quality gate at 1280x720 on this machine, side by side with
the obvious alternatives, on the same frames in one run (a benchmark, not a test).

    cd /work/main && .venv/bin/python -m benchmarks.bench_gates [--frames 33] [--repeat 2]

Frames: ``text_to_video_wan-1.webp`` (a real WAN t2v clip, 832x480) upscaled to 1280x720,
as float32 IMAGE tensors, which is what the gates receive inside ComfyUI. Targets: the
artifact gate > 200 fps, the flow-based gates > 15 fps.

Compared methods:
* artifact gate vs ffmpeg's ``blackdetect`` + ``blurdetect`` + ``signalstats`` through a
  PyAV filter graph (frames converted to ``rgb24`` VideoFrames, as a node would have to);
* temporal gate (512 px analysis copy, DIS flow at half of that) vs ``core.flow.
  warping_error`` on the full 1280x720 frames (its default flow scale 0.5) vs plain
  consecutive-frame SSIM-Y (``core.imaging.ssim``; fast but blind to motion vs flicker);
* seam gate: one seam (a window of 10 frames) per call;
* keyframe fidelity gate: one clip (2 frames against 2 keyframes) per call.
The best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from anime_pipeline.core import flow
from anime_pipeline.core.imaging import from_uint8, ssim, to_uint8
from anime_pipeline.core.quality import artifacts, fidelity, seam, temporal
from devkit import calibration as cal

W, H = 1280, 720


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ffmpeg_artifacts(frames: torch.Tensor) -> int:
    """blackdetect + blurdetect + signalstats over the clip via PyAV; returns frames seen."""
    import av

    graph = av.filter.Graph()
    src = graph.add_buffer(width=W, height=H, format="rgb24", time_base="1/16")
    fmt = graph.add("format", "yuv420p")
    black = graph.add("blackdetect", "d=0:pic_th=0.98:pix_th=0.10")
    blur = graph.add("blurdetect")
    stats = graph.add("signalstats")
    sink = graph.add("buffersink")
    src.link_to(fmt)
    fmt.link_to(black)
    black.link_to(blur)
    blur.link_to(stats)
    stats.link_to(sink)
    graph.configure()
    seen = 0
    for i, frame in enumerate(to_uint8(frames)):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = i
        graph.push(vf)
        try:
            while True:
                graph.pull()
                seen += 1
        except (av.BlockingIOError, av.EOFError):
            pass
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    try:
        src = cal.template_clip("text_to_video_wan-1.webp")
    except FileNotFoundError as exc:
        sys.exit(f"bench_gates: {exc}")
    idx = [i % len(src) for i in range(args.frames)]
    clip = np.stack([cv2.resize(src[i], (W, H), interpolation=cv2.INTER_CUBIC) for i in idx])
    frames = from_uint8(clip)
    n = frames.shape[0]
    keys = from_uint8(np.stack([cal.lossy_round_trip(clip[0]), cal.lossy_round_trip(clip[-1])]))
    u8 = to_uint8(frames)
    print(f"{n} frames {W}x{H}, torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, "
          f"best of {args.repeat}\n")

    rows = []

    def run(group: str, method: str, fn, unit_frames: int, note: str = ""):
        t = best(fn, args.repeat)
        rows.append((group, method, unit_frames / t, 1000 * t, note))

    run("artifact", "AP artifact gate", lambda: artifacts.artifact_gate(frames), n, "target > 200 fps")
    try:
        run("artifact", "ffmpeg black/blur/signalstats (PyAV)", lambda: ffmpeg_artifacts(frames), n)
    except Exception as exc:  # noqa: BLE001 - a filter missing from this PyAV build is reported, not fatal
        rows.append(("artifact", "ffmpeg black/blur/signalstats (PyAV)", float("nan"), float("nan"), f"failed: {exc}"))
    run("temporal", "AP temporal gate (512 px analysis)", lambda: temporal.temporal_gate(frames), n, "target > 15 fps")
    run("temporal", "core.flow.warping_error, full res", lambda: [
        flow.warping_error(u8[i], u8[i + 1]) for i in range(n - 1)], n)
    run("temporal", "consecutive SSIM-Y (no motion comp.)", lambda: ssim(frames[:-1], frames[1:]), n)
    run("seam", "AP seam gate, one seam (10-frame window)", lambda: seam.seam_gate(frames, [n // 2]), 10,
        "fps over the window")
    run("keyframe", "AP keyframe fidelity gate, one clip", lambda: fidelity.keyframe_fidelity_gate(
        frames, keys[:1], keys[1:]), n, "fps = clip frames / call")

    print(f"{'gate':<10} {'method':<42} {'fps':>9} {'ms/call':>9}  note")
    print("-" * 92)
    for group, method, fps, ms, note in rows:
        print(f"{group:<10} {method:<42} {fps:>9.1f} {ms:>9.1f}  {note}")


if __name__ == "__main__":
    main()
