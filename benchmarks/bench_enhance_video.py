"""``python -m driver enhance`` against ffmpeg ``minterpolate`` (mci) + ``scale`` (lanczos),
side by side in one run on the same inputs (a benchmark, not a test).

    python -m benchmarks.bench_enhance_video [--sizes 720,1080] [--memory-budget 1.0]

Inputs: the enhance tests' footage (three real WAN shots joined with hard cuts, the middle
one on twos; devkit/harness/enhance_media.py) cover-resized to 1280x720 and 1920x1080,
x264 CRF 8, 24 fps. One CPU ComfyUI server (started here) renders ours.

1. End to end, 24 -> 48 fps (and x2 upscale at 720p): source frames per second from the
   input file to the encoded output, wall clock and CPU seconds (ours: this process and the
   ComfyUI process; theirs: this process), with the load average beside them. Ours: probe,
   analysis, chunk upload, render, download, encode (x264 CRF 18 medium, the default
   preset), and the ``fast`` preset (one flow estimate; its own CRF 23 veryfast encode);
   theirs: as ``ffmpeg -i in -vf minterpolate=fps=48:mi_mode=mci[,scale=...:flags=lanczos]
   -c:v libx264 -crf 18 -preset medium`` runs it: decoded frames in the decoder's pixel
   format through the filter graph, each filtered frame straight into the encoder; x264 with
   frame threads on both sides (ffmpeg's default; PyAV's is slice threads).
2. Quality on the drop-every-other-frame protocol: the even frames as a 12 fps input,
   12 -> 24, mean PSNR (RGB) and SSIM-Y of each predicted odd frame against the true one
   (frames whose two kept neighbours straddle a cut are left out), before the final encode.
3. Frames blended across cuts in the 24 -> 48 output: an output frame at a cut interval
   that is neither source frame (mean |diff| > 2 levels to both) counts.
4. The floor both sides share: the peer's own filtered frames (its output, already in
   ``yuv420p`` at the output size), and ours (the frames before our final encode, resized
   and converted beforehand), encoded again with the same x264 settings, timed alone with
   the machine to itself. No pipeline that ends in this encode finishes faster, so
   ``peer wall / encode wall`` is the highest speed ratio an enhancer can reach here.
5. Memory: the ComfyUI process's peak RSS while each chunk renders, above its RSS when it
   was idle before the first job, against the chunk's modelled need and the budget
   (``--memory-budget``; ``driver.enhance.plan.Budget``).

The long case (``--long N``, default 6, at ``--long-sizes``): the three shots N times over,
other drawings of the same clips each time (``enhance_media.source_frames(offset=...)``), hard
cuts between: the same mix of cuts, holds and motion as the short input, N times longer (an
anime video is minutes long; the short input is mostly fixed per-run costs). Before the
first timed run, one untimed run on the small test clip (the server's one-time warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil

from benchmarks.bench_interp import psnr, ssim_y
from benchmarks.pyav_filters import run_frames
from devkit.harness import enhance_media as em
from devkit.harness.comfy import find_comfyui, start_server
from driver.cli import main as driver_main
from driver.enhance import dispatch
from driver.enhance.output import frames_of
from driver.enhance.probe import FrameSource, probe

SIZES = {720: (1280, 720), 1080: (1920, 1080)}


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def peers(src: Path, out: Path, fps_out: int, scale: int) -> tuple[float, float, list[np.ndarray], float]:
    """minterpolate mci (+ lanczos scale), x264 CRF 18 medium, run as ``ffmpeg -i src -vf ... out``
    runs them: each decoded frame (in the decoder's own pixel format, no RGB round trip) goes
    through the filter graph and each filtered frame straight into the encoder (x264's own
    threads encode while the next frames are filtered). (wall s, CPU s, the filtered frames
    as RGB, converted after the clock stops, and the wall s of encoding those same frames
    again alone: :func:`encode_alone`)."""
    me = psutil.Process()
    t0, c0 = time.perf_counter(), cpu_s(me)
    kept: list[av.VideoFrame] = []
    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        cc = s.codec_context
        w, h, tb = cc.width, cc.height, Fraction(1, int(s.average_rate))
        chain = [("minterpolate", f"fps={fps_out}:mi_mode=mci")]
        if scale > 1:
            chain.append(("scale", f"{w * scale}:{h * scale}:flags=lanczos"))
        v = x264_stream(o, fps_out, w * scale, h * scale)
        out_tb = Fraction(1, fps_out)

        def encode(frames) -> None:
            for f in frames:
                f.pts, f.time_base = len(kept), out_tb
                kept.append(f)
                o.mux(v.encode(f))

        encode(run_frames(c.decode(s), chain, width=w, height=h, time_base=tb, pix_fmt=cc.pix_fmt))
        o.mux(v.encode(None))
    seconds, cpu = time.perf_counter() - t0, cpu_s(me) - c0
    floor = encode_alone(kept, out.with_name(f"{out.stem}.again{out.suffix}"), fps_out)
    return seconds, cpu, [f.to_ndarray(format="rgb24") for f in kept], floor


def x264_stream(o, fps: int, width: int, height: int):
    """x264 CRF 18 medium in frame threads, as ffmpeg's command line (and ours) run it."""
    v = o.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "medium"})
    v.width, v.height, v.pix_fmt = width, height, "yuv420p"
    v.codec_context.thread_type = "AUTO"
    return v


def encode_alone(frames: list[av.VideoFrame], out: Path, fps: int) -> float:
    """Wall seconds of encoding ``frames`` (already in the encoder's pixel format and size)
    with the settings of both sides, nothing else running in this process."""
    t0 = time.perf_counter()
    with av.open(str(out), "w") as o:
        v = x264_stream(o, fps, frames[0].width, frames[0].height)
        for f in frames:
            o.mux(v.encode(f))
        o.mux(v.encode(None))
    return time.perf_counter() - t0


class Memory:
    """Peak RSS of the ComfyUI process per rendered chunk (sampled every 20 ms)."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.idle = self.proc.memory_info().rss
        self.peak, self.per_chunk = 0, []
        self.stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()
        original = dispatch.Dispatch._attempt  # runs while the chunk holds its server
        memory = self

        def measured(d, run, chunk, *a, **kw):
            memory.peak = 0
            try:
                return original(d, run, chunk, *a, **kw)
            finally:
                memory.per_chunk.append((chunk.n_src, chunk.n_rendered, memory.peak - memory.idle))

        dispatch.Dispatch._attempt = measured  # type: ignore[method-assign]

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)


def ours(url: str, mem: Memory, src: Path, out: Path, fps_out: int, scale: int, budget: float,
         preset: str = "anime-clean") -> tuple[float, float]:
    """(wall s, CPU s of this process and ComfyUI) of ``driver enhance``."""
    me = psutil.Process()
    c0, t0 = cpu_s(me) + cpu_s(mem.proc), time.perf_counter()
    mem.per_chunk = []
    rc = driver_main(["enhance", str(src), "--out", str(out), "--fps", str(fps_out), "--scale", str(scale),
                      "--server", url, "--memory-budget", str(budget), "--preset", preset, "--overwrite", "--plain"])
    seconds = time.perf_counter() - t0
    assert rc == 0, f"enhance exited {rc}"
    return seconds, cpu_s(me) + cpu_s(mem.proc) - c0


def rendered(out: Path) -> list[np.ndarray]:
    """Our frames just before the final encode."""
    return list(frames_of(out.with_name(f"{out.stem}.enhance")))


def memory_lines(out: Path, mem: Memory) -> list[str]:
    doc = json.loads((out.with_name(f"{out.stem}.enhance") / "enhance.json").read_text())
    b = doc["budget"]
    per_src, per_out = b["in_frame_bytes"], b["out_frame_bytes"]
    lines = []
    for n_src, n_rendered, peak in mem.per_chunk:
        need = n_src * per_src + n_rendered * per_out + b["fixed_bytes"]
        lines.append(f"    chunk {n_src:3d} src / {n_rendered:3d} rendered: peak {peak / 2**20:6.0f} MB above idle, "
                     f"modelled {need / 2**20:5.0f} MB, budget {b['memory_bytes'] / 2**20:.0f} MB"
                     f"{'' if peak <= b['memory_bytes'] else '  OVER BUDGET'}")
    return lines


def yuv_frames(frames: list[np.ndarray], scale: int) -> list[av.VideoFrame]:
    """RGB frames as the encoder takes them (``yuv420p``, resized lanczos to ``scale`` x)."""
    out = []
    for f in frames:
        h, w = f.shape[:2]
        out.append(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
            w * scale, h * scale, format="yuv420p", interpolation="LANCZOS"))
    return out


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


def long_source(size: int, repeats: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The three shots ``repeats`` times over (hard cuts between), each time other drawings of
    the same clips (``offset``): the same mix of cuts, holds and motion, ``repeats`` x longer."""
    parts, cuts, n = [], [], 0
    for r in range(repeats):
        frames, part_cuts, _ = em.source_frames(size=SIZES[size], offset=r)
        if parts:
            cuts.append(n - 1)
        cuts += [n + i for i in part_cuts]
        parts.append(frames)
        n += len(frames)
    return np.concatenate(parts), tuple(cuts)


def run_size(url: str, mem: Memory, size: int, budget: float, tmp: Path, repeats: int = 1) -> None:
    if repeats > 1:
        frames, cuts = long_source(size, repeats)
        scales, tag0 = (1,), f"{size}L"
    else:
        frames, cuts, _ = em.source_frames(size=SIZES[size])
        scales, tag0 = (1, 2) if size == 720 else (1,), str(size)
    n = len(frames)
    src = em.write_video(tmp / f"in{tag0}.mkv", frames, Fraction(24), subtitles=False)
    # each method against the input as it decodes it: ours with the HD matrix (BT.709, the file is
    # untagged), the peer with swscale's default (BT.601)
    truth_ours = np.stack(list(FrameSource(probe(src))))
    truth = np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(src)).decode(video=0)])
    print(f"{size}p: {n} source frames ({len(cuts)} cuts), 24 -> 48 fps, budget {budget:.2f} GB per chunk")
    for scale in scales:
        tag = f"{tag0}_{scale}"
        t_ours, c_ours = ours(url, mem, src, tmp / f"ours{tag}.mkv", 48, scale, budget)
        mem_lines = memory_lines(tmp / f"ours{tag}.mkv", mem)
        t_fast, c_fast = ours(url, mem, src, tmp / f"fast{tag}.mkv", 48, scale, budget, preset="fast")
        t_peer, c_peer, peer_frames, t_floor = peers(src, tmp / f"peer{tag}.mkv", 48, scale)
        t_own = encode_alone(yuv_frames(rendered(tmp / f"ours{tag}.mkv"), scale), tmp / f"again{tag}.mkv", 48)
        print(f"  x{scale} end to end ({load()}):\n"
              f"    ours anime-clean {n / t_ours:5.2f} src fps ({t_ours:5.1f} s wall, {c_ours:5.1f} s CPU)\n"
              f"    ours fast        {n / t_fast:5.2f} src fps ({t_fast:5.1f} s wall, {c_fast:5.1f} s CPU)\n"
              f"    minterpolate     {n / t_peer:5.2f} src fps ({t_peer:5.1f} s wall, {c_peer:5.1f} s CPU)\n"
              f"    speed ratio (wall) clean {t_peer / t_ours:.2f}x, fast {t_peer / t_fast:.2f}x; "
              f"(CPU) clean {c_peer / c_ours:.2f}x, fast {c_peer / c_fast:.2f}x\n"
              f"    the x264 encode alone: of the peer's frames {t_floor:5.1f} s wall, of ours {t_own:5.1f} s; "
              f"the most an enhancer ending in it can reach here: {t_peer / t_floor:.2f}x / {t_peer / t_own:.2f}x")
        if scale == 1:
            print(f"    blended cut frames: ours {blended(rendered(tmp / f'ours{tag}.mkv'), truth_ours, cuts, 2)}, "
                  f"fast {blended(rendered(tmp / f'fast{tag}.mkv'), truth_ours, cuts, 2)}, "
                  f"minterpolate {blended(peer_frames, truth, cuts, 2)} (of {len(cuts)} cuts x 1 frame)")
        print("    ComfyUI memory per chunk (anime-clean):\n" + "\n".join(mem_lines))
    if repeats > 1:
        return
    half = em.write_video(tmp / f"half{size}.mkv", frames[::2], Fraction(12), subtitles=False)
    ours(url, mem, half, tmp / f"oursq{size}.mkv", 24, 1, budget)
    ours(url, mem, half, tmp / f"fastq{size}.mkv", 24, 1, budget, preset="fast")
    _, _, peer_frames, _ = peers(half, tmp / f"peerq{size}.mkv", 24, 1)
    po, so = quality(rendered(tmp / f"oursq{size}.mkv"), truth_ours, cuts)
    pf, sf = quality(rendered(tmp / f"fastq{size}.mkv"), truth_ours, cuts)
    pp, sp = quality(peer_frames, truth, cuts)
    print(f"  drop-every-other {size}p: ours PSNR {po:.2f} SSIM {so:.4f}; fast PSNR {pf:.2f} SSIM {sf:.4f}; "
          f"minterpolate PSNR {pp:.2f} SSIM {sp:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--memory-budget", type=float, default=1.0, help="GB per chunk")
    ap.add_argument("--long", type=int, default=6, help="the long case: the shots this many times over (0 = none)")
    ap.add_argument("--long-sizes", default="720", help="sizes of the long case")
    args = ap.parse_args()
    install, why = find_comfyui()
    if install is None:
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = start_server(tmp / "base", install=install)
        mem = Memory(server.proc.pid)
        try:
            # one untimed run on the small test clip first: the server's one-time costs (lazy imports,
            # OpenCV's first DIS instance, allocator growth) are not a per-video cost, like its start
            small = em.write_video(tmp / "warmup.mkv", em.source_frames()[0], Fraction(24), subtitles=False)
            ours(server.url, mem, small, tmp / "warmup_out.mkv", 48, 1, args.memory_budget)
            for size in (int(s) for s in args.sizes.split(",") if s):
                run_size(server.url, mem, size, args.memory_budget, tmp)
            for size in (int(s) for s in args.long_sizes.split(",") if s and args.long > 1):
                run_size(server.url, mem, size, args.memory_budget, tmp, repeats=args.long)
        finally:
            mem.stop.set()
            server.stop()


if __name__ == "__main__":
    main()
