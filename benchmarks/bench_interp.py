"""Frame interpolation and 16 -> 24 retiming, side by side in one run (a benchmark, not a test).

    cd /work/main && .venv/bin/python -m benchmarks.bench_interp [--clips a,b,...] [--retime-frames 64] [--retime-only]

1. Interpolation quality on real clips (template WebPs at native size, decode excluded):
   * drop-every-other: keep the even frames, predict each odd frame at t = 0.5;
   * keep-every-third: keep frames 0, 3, 6, ..., predict the others at t = 1/3 and 2/3.
   Mean PSNR (RGB, 8-bit) and SSIM-Y (Gaussian 11 / 1.5) per clip and over clips, for frame
   repeat (nearer kept frame), linear blend, ffmpeg ``minterpolate`` (defaults except the
   output rate, via PyAV, yuv444p so chroma is not subsampled), and ours (``FlowInterpolator``
   default; its single 192 px flow estimate alone, + occlusion weighting, + line guard; and the
   previous default, fast preset at 640 px). "moving" = only the predicted frames that
   differ from both neighbours (template clips contain re-timing duplicates, which inflate
   every method). ms per synthesised frame, 2 OpenCV threads.
2. ``AP_AnimeRetime`` 16 -> 24 on a 1280x720 clip (all motion: the worst case), float IMAGE
   in and out: source frames per second with the labels given, and with the gate included.
"""

from __future__ import annotations

import argparse
import fractions
import sys
import time

import cv2
import numpy as np


from anime_pipeline.core.imaging import from_uint8
from anime_pipeline.core.interpolate import FlowInterpolator, LinearBlend
from anime_pipeline.nodes.motion import AnimeRetime, MotionGate
from devkit.groundtruth import build as gt
from benchmarks.pyav_filters import run_chain

CLIPS = [  # the reference's five (A-E) and three more cartoon/anime clips
    "image_to_video_wan-1", "text_to_video_wan-1", "api_veo2_i2v-1", "wan2.1_flf2v_720_f16-1",
    "video_wan_vace_inpainting-2", "video_wan_vace_inpainting-1", "video_wan2_2_14B_animate-1", "api_pika_i2v-1",
]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def ssim_y(a: np.ndarray, b: np.ndarray) -> float:
    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64) for x in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def g(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = g(ya), g(yb)
    va, vb, cov = g(ya * ya) - ma * ma, g(yb * yb) - mb * mb, g(ya * yb) - ma * mb
    return float(np.mean(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))))


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


class Repeat:
    name = "repeat"

    def interpolate(self, a, b, ts, out=None):
        return np.stack([a if t < 0.5 else b for t in ts])


def minterpolate(kept: np.ndarray, step: int) -> tuple[dict[int, np.ndarray], float]:
    """ffmpeg minterpolate (defaults) at ``step`` x the rate; returns {original index: frame}, seconds."""
    n, h, w = kept.shape[:3]
    chain = [("format", "yuv444p"), ("minterpolate", f"fps={16 * step}")]
    out: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for f in run_chain(kept, chain, width=w, height=h, time_base=fractions.Fraction(1, 16)):
        out[round(f.pts * f.time_base * 16 * step)] = f.to_ndarray(format="rgb24")
    return out, time.perf_counter() - t0


def evaluate(frames: np.ndarray, step: int, methods: dict) -> dict:
    """Predict every frame between kept frames ``0, step, 2 step, ...``; per-method scores."""
    kept_idx = list(range(0, len(frames), step))
    if kept_idx[-1] != len(frames) - 1:
        kept_idx = kept_idx[:-1] if len(kept_idx) > 1 else kept_idx
    targets = [(k, k + j, j / step) for k in kept_idx[:-1] for j in range(1, step) if k + step <= kept_idx[-1]]
    moving = {t for _, t, _ in targets
              if min(gt.block_max(frames[t], frames[t - 1]), gt.block_max(frames[t], frames[t + 1])) >= 3.0}
    f32 = frames.astype(np.float32) / 255.0
    res = {}
    for name, ip in methods.items():
        preds, t0 = {}, time.perf_counter()
        for k in kept_idx[:-1]:
            outs = ip.interpolate(f32[k], f32[k + step], [j / step for j in range(1, step)])
            for j, o in enumerate(outs, 1):
                preds[k + j] = to_u8(o)
        res[name] = (preds, (time.perf_counter() - t0) / max(len(preds), 1))
    mi, secs = minterpolate(frames[kept_idx], step)
    preds = {t: mi[t] for _, t, _ in targets if t in mi}
    res["ffmpeg minterpolate"] = (preds, secs / max(len(preds), 1))
    table = {}
    for name, (preds, sec) in res.items():
        common = [t for _, t, _ in targets if t in preds and t in res["ffmpeg minterpolate"][0]]
        mov = [t for t in common if t in moving]
        table[name] = (np.mean([psnr(preds[t], frames[t]) for t in common]),
                       np.mean([ssim_y(preds[t], frames[t]) for t in common]),
                       np.mean([psnr(preds[t], frames[t]) for t in mov]) if mov else np.nan,
                       sec * 1000, len(common), len(mov))
    return table


def interpolation(clips: list[str]) -> None:
    one = {"extra_flow_sizes": ()}  # the occlusion / line-guard variants use one flow estimate
    methods = {"repeat": Repeat(), "linear blend": LinearBlend(), "ours (DIS flow)": FlowInterpolator(),
               "ours, 1 flow (192)": FlowInterpolator(**one),
               "ours 1 flow + occlusion": FlowInterpolator(occlusion_px=2.0, **one),
               "ours 1 flow + line guard": FlowInterpolator(line_guard=0.25, **one),
               "previous (fast, 640)": FlowInterpolator(preset="fast", flow_size=640, finest_scale=None, **one)}
    for step, title in ((2, "drop-every-other (t = 1/2)"), (3, "keep-every-third (t = 1/3, 2/3)")):
        print(f"\n== Interpolation, {title}: PSNR dB / SSIM-Y / PSNR on moving frames / ms per frame ==")
        totals: dict[str, list] = {}
        for clip in clips:
            frames = gt.load_clip(clip, None)
            table = evaluate(frames, step, methods)
            n, nm = next(iter(table.values()))[4:6]
            print(f"-- {clip} {frames.shape[2]}x{frames.shape[1]}, {n} predicted frames ({nm} moving)")
            for name, (p, s, pm, ms, *_rest) in table.items():
                print(f"   {name:24s} {p:6.2f}  {s:6.4f}  {pm:6.2f}  {ms:7.1f}")
                totals.setdefault(name, []).append((p, s, pm, ms))
        print("-- mean over clips")
        ref = np.mean([t[0] for t in totals["ffmpeg minterpolate"]])
        ref_ms = np.mean([t[3] for t in totals["ffmpeg minterpolate"]])
        for name, vals in totals.items():
            p, s, pm, ms = (np.nanmean([v[i] for v in vals]) for i in range(4))
            print(f"   {name:24s} {p:6.2f}  {s:6.4f}  {pm:6.2f}  {ms:7.1f}   "
                  f"vs minterpolate {p - ref:+.2f} dB, {ref_ms / ms:4.1f}x speed")


def retime_speed(n_frames: int) -> None:
    src = gt.load_clip("image_to_video_wan-1", None)
    loop = np.concatenate([src, src[-2:0:-1]])  # ping-pong: every interval is motion
    idx = [i % len(loop) for i in range(n_frames)]
    big = np.stack([gt.cover_resize(loop[i], (1280, 720)) for i in idx])
    images = from_uint8(big)
    del big
    gate = MotionGate()
    labels, _ = gate.gate(images, 5.0, 0.63, 3.5, False, 4.5)
    node = AnimeRetime()
    node.retime(images[:3], 16.0, 24.0, "keep_holds")  # warm-up
    print(f"\n== AP_AnimeRetime 16 -> 24, 1280x720 float IMAGE, {n_frames} frames "
          f"({labels.labels.count('motion')} motion intervals), 2 cores ==")
    t, cpu = time.perf_counter(), time.process_time()
    out, fps, _ = node.retime(images, 16.0, 24.0, "keep_holds", labels)
    sec, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"   labels given:   {n_frames / sec:6.1f} source frames/s, {cpu / n_frames * 1000:5.1f} CPU ms per source "
          f"frame ({len(out)} frames out at {fps} fps)")
    t, cpu = time.perf_counter(), time.process_time()
    node.retime(images, 16.0, 24.0, "keep_holds")
    sec, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"   gate included:  {n_frames / sec:6.1f} source frames/s, {cpu / n_frames * 1000:5.1f} CPU ms per source "
          f"frame   (target >= 16 frames/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--retime-frames", type=int, default=64)
    parser.add_argument("--retime-only", action="store_true", help="skip the interpolation tables")
    args = parser.parse_args()
    if gt.missing_reason():
        sys.exit(gt.missing_reason())
    cv2.setNumThreads(2)
    if not args.retime_only:
        interpolation(args.clips.split(","))
    retime_speed(args.retime_frames)


if __name__ == "__main__":
    main()
