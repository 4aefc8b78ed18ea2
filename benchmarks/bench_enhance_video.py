"""``python -m driver enhance`` against ffmpeg ``minterpolate`` (mci) + ``scale`` (lanczos),
side by side in one run on the same inputs (a benchmark, not a test).

    python -m benchmarks.bench_enhance_video [--sizes 720,1080] [--memory-budget 0.5]

Inputs: the enhance tests' footage (three real WAN shots joined with hard cuts, the middle
one on twos; devkit/harness/enhance_media.py) cover-resized to 1280x720 and 1920x1080,
x264 CRF 8, 24 fps. One CPU ComfyUI server (started here) renders ours.

1. End to end, 24 -> 48 fps (and x2 upscale at 720p): source frames per second from the
   input file to the encoded output (ours: probe, analysis, chunk upload, render, download,
   encode; theirs: decode, minterpolate mci (+ scale lanczos), encode with the same CRF).
2. Quality on the drop-every-other-frame protocol: the even frames as a 12 fps input,
   12 -> 24, mean PSNR (RGB) and SSIM-Y of each predicted odd frame against the true one
   (frames whose two kept neighbours straddle a cut are left out), before the final encode.
3. Frames blended across cuts in the 24 -> 48 output: an output frame at a cut interval
   that is neither source frame (mean |diff| > 2 levels to both) counts.
4. Peak RSS of the ComfyUI process above its idle level while ours renders, against the
   chunk budget (``--memory-budget``, float32 frames in + out per chunk).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil

from benchmarks.bench_interp import psnr, ssim_y
from benchmarks.pyav_filters import run_chain
from devkit.harness import enhance_media as em
from devkit.harness.comfy import find_comfyui, start_server
from driver.cli import main as driver_main
from driver.enhance.output import frames_of
from driver.enhance.probe import FrameSource, probe

SIZES = {720: (1280, 720), 1080: (1920, 1080)}


def peers(src: Path, out: Path, fps_out: int, scale: int) -> tuple[float, list[np.ndarray]]:
    """minterpolate mci (+ lanczos scale), then x264 CRF 18 medium; (seconds, frames before the encode)."""
    t0 = time.perf_counter()
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        w, h, tb = s.codec_context.width, s.codec_context.height, Fraction(1, int(s.average_rate))
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    chain = [("minterpolate", f"fps={fps_out}:mi_mode=mci")]
    if scale > 1:
        chain.append(("scale", f"{w * scale}:{h * scale}:flags=lanczos"))
    chain.append(("format", "rgb24"))
    result = [f.to_ndarray(format="rgb24") for f in run_chain(frames, chain, width=w, height=h, time_base=tb)]
    with av.open(str(out), "w") as o:
        v = o.add_stream("libx264", rate=fps_out, options={"crf": "18", "preset": "medium"})
        v.height, v.width = result[0].shape[:2]
        v.pix_fmt = "yuv420p"
        for i, rgb in enumerate(result):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            o.mux(v.encode(vf))
        o.mux(v.encode(None))
    return time.perf_counter() - t0, result


def ours(url: str, src: Path, out: Path, fps_out: int, scale: int, budget: float, pid: int) -> tuple[float, float]:
    """(seconds, peak RSS above idle in bytes) of ``driver enhance``."""
    proc, peak, stop = psutil.Process(pid), [0], threading.Event()
    idle = proc.memory_info().rss

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    rc = driver_main(["enhance", str(src), "--out", str(out), "--fps", str(fps_out), "--scale", str(scale),
                      "--server", url, "--memory-budget", str(budget), "--overwrite", "--plain"])
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    assert rc == 0, f"enhance exited {rc}"
    return seconds, max(0, peak[0] - idle)


def rendered(out: Path) -> list[np.ndarray]:
    """Our frames just before the final encode."""
    return list(frames_of(out.with_name(f"{out.stem}.enhance")))


def blended(frames: list[np.ndarray], src: np.ndarray, cuts, ratio: int) -> int:
    count = 0
    for i in cuts:
        for k in range(i * ratio + 1, (i + 1) * ratio):
            if k < len(frames):
                d = [np.abs(frames[k].astype(np.int16) - src[j]).mean() for j in (i, i + 1)]
                count += min(d) > 2.0
    return count


def quality(preds: list[np.ndarray], truth: np.ndarray, cuts) -> tuple[float, float]:
    kept_cuts = {i // 2 for i in cuts}  # kept interval j (frames 2j, 2j+2) straddles a cut
    ks = [k for k in range(1, min(len(preds), len(truth)), 2) if k // 2 not in kept_cuts and k + 1 < len(truth)]
    return (float(np.mean([psnr(preds[k], truth[k]) for k in ks])),
            float(np.mean([ssim_y(preds[k], truth[k]) for k in ks])))


def run_size(url: str, pid: int, size: int, budget: float, tmp: Path) -> None:
    frames, cuts, _ = em.source_frames(size=SIZES[size])
    src = em.write_video(tmp / f"in{size}.mkv", frames, Fraction(24), subtitles=False)
    # each method against the input as it decodes it: ours with the HD matrix (BT.709, the file is
    # untagged), the peer with swscale's default (BT.601)
    truth_ours = np.stack(list(FrameSource(probe(src))))
    truth = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(src)).decode(video=0)])
    for scale in (1, 2) if size == 720 else (1,):
        t_ours, mem = ours(url, src, tmp / f"ours{size}_{scale}.mkv", 48, scale, budget, pid)
        t_peer, peer_frames = peers(src, tmp / f"peer{size}_{scale}.mkv", 48, scale)
        n = len(frames)
        print(f"{size}p x{scale} 24->48, {n} frames: ours {n / t_ours:.2f} src fps ({t_ours:.1f} s), "
              f"minterpolate {n / t_peer:.2f} src fps ({t_peer:.1f} s); speed ratio {t_peer / t_ours:.2f}x")
        if scale == 1:
            ours_frames = rendered(tmp / f"ours{size}_{scale}.mkv")
            print(f"  blended cut frames: ours {blended(ours_frames, truth_ours, cuts, 2)}, "
                  f"minterpolate {blended(peer_frames, truth, cuts, 2)} (of {len(cuts)} cuts x 1 frame)")
            print(f"  ComfyUI peak RSS above idle {mem / 2**20:.0f} MB; chunk budget {budget * 1024:.0f} MB")
    half = em.write_video(tmp / f"half{size}.mkv", frames[::2], Fraction(12), subtitles=False)
    ours(url, half, tmp / f"oursq{size}.mkv", 24, 1, budget, pid)
    _, peer_frames = peers(half, tmp / f"peerq{size}.mkv", 24, 1)
    po, so = quality(rendered(tmp / f"oursq{size}.mkv"), truth_ours, cuts)
    pp, sp = quality(peer_frames, truth, cuts)
    print(f"  drop-every-other {size}p: ours PSNR {po:.2f} SSIM {so:.4f}; minterpolate PSNR {pp:.2f} SSIM {sp:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--memory-budget", type=float, default=0.5, help="GB per chunk")
    args = ap.parse_args()
    install, why = find_comfyui()
    if install is None:
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = start_server(tmp / "base", install=install)
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                run_size(server.url, server.proc.pid, size, args.memory_budget, tmp)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
