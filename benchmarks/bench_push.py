"""Held-frame push: AP_HeldFramePush's core vs ffmpeg ``zoompan`` (through PyAV's filter graph).

One run, same stills, same trajectory, 1280x720 output:

* speed: frames per second of each renderer producing uint8 RGB frames (wall clock, best of
  3 runs of 24 frames, this machine; AP renders float32 IMAGE frames and converts them);
* trajectory smoothness: each output frame's transform is estimated against the still by
  OpenCV's ECC (``cv2.findTransformECC``, MOTION_AFFINE: scale and translation on both axes,
  so zoom jitter is seen as well as pan jitter), starting from the ideal transform; the
  deviation is how far the estimated and ideal transforms place the frame's corners and
  centre, in output pixels. Reported: mean and max over frames, the jitter (a frame's
  deviation minus the mean of its neighbours': wobble, not smooth drift) and the largest
  scale error.
  A third row renders the ideal transform with ``cv2.warpAffine`` (float matrix, Lanczos-4):
  the measurement floor.

Stills (16:9 so zoompan's window keeps its aspect): a real WAN 2.1 i2v frame from
``comfyui-workflow-templates`` (512x512, centre 16:9 crop upscaled with Lanczos to 1344x756,
a 768-line keyframe's size) and a synthetic detailed still (line art + fine texture).
The push: 3 s at 24 fps, zoom 1.0 -> 1.25, centre (0.45, 0.55) -> (0.55, 0.45),
ease-in-out.

    python -m benchmarks.bench_push [--frames 72]
"""

from __future__ import annotations

import argparse
import math
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image

from anime_pipeline.core.push import inverse_matrix, render_push, trajectory

OUT = (1280, 720)
STILL = (1344, 756)
FPS = 24
ZOOM = (1.0, 1.25)
CENTRE = ((0.45, 0.55), (0.55, 0.45))
SPEED_FRAMES, SPEED_RUNS = 24, 3


def wan_still() -> np.ndarray:
    import comfyui_workflow_templates as templates

    path = Path(templates.__file__).parent / "templates" / "image_to_video_wan-1.webp"
    frame = np.asarray(Image.open(path).convert("RGB"))
    h, w = frame.shape[:2]
    ch = round(w * STILL[1] / STILL[0])
    crop = frame[(h - ch) // 2:(h - ch) // 2 + ch]
    return cv2.resize(crop, STILL, interpolation=cv2.INTER_LANCZOS4)


def synthetic_still(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = STILL
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 80 * xx / w, 120 + 60 * yy / h, 170 - 60 * xx / w], -1)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    img += 18 * texture[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(60):
        p0 = tuple(int(v) for v in rng.integers(0, [w, h]))
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.line(img, p0, p1, tuple(int(c) for c in rng.integers(0, 255, 3)), int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def render_ap(still: np.ndarray, states, sampling: str) -> np.ndarray:
    t = torch.from_numpy(still).float().div(255)[None]
    frames = render_push(t, OUT, states, sampling)
    return (frames * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def render_zoompan(still: np.ndarray, n: int) -> np.ndarray:
    """The same trajectory as zoompan expressions (on = output frame index)."""
    (z0, z1), ((x0, y0), (x1, y1)) = ZOOM, CENTRE
    e = f"((1-cos(PI*on/{n - 1}))/2)"
    zoom = f"{z0}*pow({z1 / z0},{e})"
    x = f"({x0}+({x1 - x0})*{e})*iw-iw/zoom/2"
    y = f"({y0}+({y1 - y0})*{e})*ih-ih/zoom/2"
    graph = av.filter.Graph()
    src = graph.add_buffer(width=still.shape[1], height=still.shape[0], format="rgb24", time_base=Fraction(1, FPS))
    zp = graph.add("zoompan", f"z='{zoom}':x='{x}':y='{y}':d={n}:s={OUT[0]}x{OUT[1]}:fps={FPS}")
    fmt = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    src.link_to(zp)
    zp.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    frame = av.VideoFrame.from_ndarray(still, format="rgb24")
    frame.pts = 0
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            out.append(graph.pull().to_ndarray())
        except (av.error.EOFError, BlockingIOError):
            break
    return np.stack(out)


def render_cv2(still: np.ndarray, states) -> np.ndarray:
    return np.stack([cv2.warpAffine(still, inverse_matrix(s, STILL, OUT), OUT,
                                    flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
                     for s in states])


def deviation(frames: np.ndarray, still: np.ndarray, states) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: where the ECC-estimated transform puts the frame's corners and centre minus
    where the ideal one puts them, ``[n, 5, 2]`` in output px; and the relative scale error."""
    grey = cv2.cvtColor(still, cv2.COLOR_RGB2GRAY).astype(np.float32)
    w, h = OUT
    pts = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1], [w / 2, h / 2, 1]], np.float64).T
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-8)
    offsets, scales = [], []
    for frame, state in zip(frames, states):
        ideal = inverse_matrix(state, STILL, OUT)
        template = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        _, est = cv2.findTransformECC(template, grey, ideal.astype(np.float32), cv2.MOTION_AFFINE, criteria, None, 5)
        scale = 1 / ideal[0, 0]  # output px per still px
        offsets.append(((est.astype(np.float64) - ideal) @ pts).T * scale)
        est_scale = 1 / math.sqrt(abs(np.linalg.det(est[:, :2].astype(np.float64))))
        scales.append(abs(est_scale / scale - 1))
    return np.array(offsets), np.array(scales)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3 * FPS)
    args = parser.parse_args()
    n = args.frames
    states = trajectory(n, STILL, OUT, *ZOOM, *CENTRE, "ease_in_out")
    print(f"push: {n} frames, {STILL[0]}x{STILL[1]} still -> {OUT[0]}x{OUT[1]}, zoom {ZOOM[0]} -> {ZOOM[1]}, "
          f"centre {CENTRE[0]} -> {CENTRE[1]}, ease-in-out; torch threads {torch.get_num_threads()}")
    short = trajectory(SPEED_FRAMES, STILL, OUT, *ZOOM, *CENTRE, "ease_in_out")
    methods = {  # name -> render(still, states)
        "AP_HeldFramePush bicubic": lambda s, st: render_ap(s, st, "bicubic"),
        "AP_HeldFramePush bilinear": lambda s, st: render_ap(s, st, "bilinear"),
        "ffmpeg zoompan (PyAV)": lambda s, st: render_zoompan(s, len(st)),
        "cv2.warpAffine Lanczos (floor)": lambda s, st: render_cv2(s, st),
    }
    rows = []
    for still_name, still in (("WAN frame x2.6", wan_still()), ("synthetic detail", synthetic_still())):
        for name, render in methods.items():
            frames = render(still, states)
            assert frames.shape == (n, OUT[1], OUT[0], 3), (name, frames.shape)
            # speed: best of SPEED_RUNS runs of SPEED_FRAMES frames (the machine is shared)
            best = math.inf
            for _ in range(SPEED_RUNS):
                t0 = time.perf_counter()
                render(still, short)
                best = min(best, time.perf_counter() - t0)
            elapsed = best * n / SPEED_FRAMES
            offsets, scales = deviation(frames, still, states)
            dev = np.linalg.norm(offsets, axis=2).max(axis=1)  # worst of corners/centre, per frame
            # jitter: departure from the midpoint of the neighbouring frames (a smooth drift, such
            # as a constant offset or a slightly different speed, is not jitter)
            wobble = np.linalg.norm(offsets[1:-1] - (offsets[:-2] + offsets[2:]) / 2, axis=2).max(axis=1)
            rows.append((still_name, name, n / elapsed, dev.mean(), dev.max(), wobble.max(), 100 * scales.max()))
    head = (f"{'still':18s} {'method':32s} {'fps':>7s} {'mean dev px':>12s} {'max dev px':>11s} "
            f"{'max jitter px':>14s} {'max scale err %':>16s}")
    print(head)
    print("-" * len(head))
    for still_name, name, fps, mean, worst, jitter, scale in rows:
        print(f"{still_name:18s} {name:32s} {fps:7.1f} {mean:12.3f} {worst:11.3f} {jitter:14.3f} {scale:16.4f}")
    print("dev: distance between where the estimated and the ideal transform put the frame's corners and centre "
          "(worst point), output px; jitter: a frame's deviation minus the mean of its neighbours' (worst point).")


if __name__ == "__main__":
    main()
