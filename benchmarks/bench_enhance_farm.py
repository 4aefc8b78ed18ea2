"""Enhance at scale, simulated: a 24-minute 1080p episode (24 -> 48 fps, keep_holds, no
upscale) on 1, 4 and 16 GPU servers (a script, not a timed test).

    /work/venv/bin/python -m benchmarks.bench_enhance_farm [--servers 1,4,16] [--seeds 3] [--json FILE]

No GPU is used or needed. Where every figure comes from:

* **Measured here, on this CPU, per 1080p frame** (real footage: the WAN template clips,
  cover-resized to 1920x1080): the lossless chunk encode and decode (``core.chunkio``:
  Ut Video in NUT for 8-bit sources), the chunk file's bytes per frame, the source decode (H.264 CRF 18, as a delivered
  episode), and the pack's CPU interpolation (``core.interpolate.FlowInterpolator``, DIS
  flow) for comparison.
* **Published**: RIFE "can run 30+FPS for 2X 720p interpolation on a 2080Ti GPU"
  (hzwer/ECCV2022-RIFE README; arXiv 2011.06294), scaled by pixel count to 1080p
  (x 1280*720 / 1920*1080 = 13.3 interpolated frames/s); ComfyUI's 100 MB upload limit
  (``--max-upload-size``); 1 Gbit/s Ethernet (125 MB/s) between the driver and the
  servers.
* **Assumed** (no published figure used): shots log-normal around 3 s (median; sigma
  0.6), half of them animated on twos (held drawings are copied, not interpolated),
  a 24 GB GPU with half its memory as the chunk budget.
* **The chunks** are the enhance plan's own (``driver.enhance.plan.make_budget`` /
  ``make_chunks``) for those labels; **the schedule** is ``driver.farm.simulate.schedule``,
  which drives the pool's real ``Dispatcher``.

As the command does: the server returns only the interpolated frames (the copies are
placed from the source at the final encode) and a chunk with nothing to interpolate is
never sent. A chunk holds its GPU server for: its interpolated frames at the RIFE rate + the
server's own chunk I/O (decode of the source chunk, encode of the result: measured here,
taken as the GPU server's CPU speed) + the transfer of both files at 1 Gbit/s (the
simulator's per-job overhead). Utilisation counts the whole hold. The driver's own work
is not in the simulation; it is reported beside it as a floor on the wall time: decoding
the source is serial (one reader per input, in order, under the pool's bookkeeping lock),
encoding each source chunk runs beside the other chunks' (``Executor.unlocked``; PyAV
releases the GIL) on ``--driver-cores`` cores (assumed 8).

Costs are CPU seconds (``time.process_time``) so that the load of this shared machine
inflates them less than wall time would; they are still noisy: see ``uptime``."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from anime_pipeline.core.chunkio import SUFFIX, iter_chunk, write_chunk
from anime_pipeline.core.interpolate import FlowInterpolator
from devkit.harness import enhance_media as em
from driver.enhance.plan import make_budget, make_chunks
from driver.farm.simulate import SimJob, schedule

EPISODE_S = 24 * 60
FPS_IN, FPS_OUT = Fraction(24), Fraction(48)
W, H = 1920, 1080
RIFE_720P_FPS = 30.0  # ECCV2022-RIFE README: 2X 720p on a 2080 Ti
RIFE_1080P_FPS = RIFE_720P_FPS * (1280 * 720) / (W * H)
LINK_BYTES_S = 125e6  # 1 Gbit/s
UPLOAD_LIMIT = 100 << 20  # ComfyUI --max-upload-size default
GPU_MEMORY = 24 << 30
SHOT_MEDIAN_S, SHOT_SIGMA, ON_TWOS = 3.0, 0.6, 0.5


def footage(n: int = 12) -> np.ndarray:
    frames, _, _ = em.source_frames(size=(W, H))
    return frames[:n]


def measure(frames: np.ndarray, tmp: Path) -> dict:
    """Per-frame CPU seconds and bytes, on this machine."""
    path = tmp / f"c{SUFFIX}"
    t0 = time.process_time()
    write_chunk(path, iter(frames), FPS_IN, 8)
    encode = (time.process_time() - t0) / len(frames)
    t0 = time.process_time()
    n = sum(1 for _ in iter_chunk(path))
    decode = (time.process_time() - t0) / n
    src = em.write_video(tmp / "src.mkv", frames, FPS_IN, audio=False, subtitles=False, options={"crf": "18"})
    t0 = time.process_time()
    with av.open(str(src)) as c:
        m = sum(1 for _ in c.decode(c.streams.video[0]))
    src_decode = (time.process_time() - t0) / m
    interp = FlowInterpolator()
    a, b = (frames[i].astype(np.float32) / 255 for i in (0, 1))
    t0 = time.process_time()
    for _ in range(3):
        interp.interpolate(a, b, [0.5])
    dis = (time.process_time() - t0) / 3
    return {"chunk_encode_s": encode, "chunk_decode_s": decode, "chunk_bytes": path.stat().st_size / len(frames),
            "source_decode_s": src_decode, "cpu_dis_interp_s": dis}


def episode_labels(rng: random.Random) -> tuple[str, ...]:
    n = int(EPISODE_S * FPS_IN)
    labels: list[str] = []
    while len(labels) < n - 1:
        frames = max(6, int(rng.lognormvariate(np.log(SHOT_MEDIAN_S * 24), SHOT_SIGMA)))
        twos = rng.random() < ON_TWOS
        labels += ["hold" if twos and i % 2 == 0 else "motion" for i in range(frames - 1)]
        labels.append("cut")
    return tuple(labels[:n - 1])


def chunk_work(labels: tuple[str, ...], m: dict) -> tuple[list[SimJob], float, dict]:
    """Simulation jobs of the plan's chunks (duration on a GPU server), the per-job transfer
    overhead (mean) and the plan's figures."""
    from types import SimpleNamespace

    n = len(labels) + 1
    info = SimpleNamespace(width=W, height=H, rgb_bits=8)
    budget = make_budget(info, 1, GPU_MEMORY // 2, UPLOAD_LIMIT, 0, int(m["chunk_bytes"] * 1.5),  # type: ignore[arg-type]
                         upscale_on_server=False)
    chunks = make_chunks(labels, n, FPS_IN, FPS_OUT, "keep_holds", budget, interpolated_only=True)
    frames_out = sum(c.n_out for c in chunks)
    chunks = [c for c in chunks if c.n_rendered]  # chunks of copies only are never sent
    jobs, transfer = [], []
    parts = {"gpu_interp_s": 0.0, "server_chunk_io_s": 0.0, "transfer_s": 0.0}
    for c in chunks:
        io = c.n_src * m["chunk_decode_s"] + c.n_rendered * m["chunk_encode_s"]
        moved = (c.n_src + c.n_rendered) * m["chunk_bytes"] / LINK_BYTES_S
        gpu = c.n_rendered / RIFE_1080P_FPS  # the server renders only the interpolated frames
        transfer.append(moved)
        parts["gpu_interp_s"] += gpu
        parts["server_chunk_io_s"] += io
        parts["transfer_s"] += moved
        jobs.append(SimJob(c.index, c.shot, gpu + io + moved, gpu + io + moved))
    driver_decode = sum(c.n_src for c in chunks) * m["source_decode_s"]
    driver_encode = sum(c.n_src for c in chunks) * m["chunk_encode_s"]
    return jobs, float(np.mean(transfer)), {
        "frames_in": n, "frames_out": frames_out, "chunks": len(chunks),
        "interpolated": sum(c.n_rendered for c in chunks),
        "mean_chunk_src_frames": round(float(np.mean([c.n_src for c in chunks])), 1),
        "driver_decode_s": round(driver_decode, 1), "driver_encode_s": round(driver_encode, 1),
        **{k: round(v, 1) for k, v in parts.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="1,4,16")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--driver-cores", type=int, default=8, help="cores of the driver's machine (assumed)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(footage(), Path(tmp))
    print("measured here (CPU, per 1080p frame): " + ", ".join(
        f"{k} {v * 1000:.1f} ms" if k.endswith("_s") else f"{k} {v / 1e6:.2f} MB" for k, v in m.items()))
    print(f"GPU interpolation (published RIFE 2x 720p 30 fps on a 2080 Ti, by pixels): {RIFE_1080P_FPS:.1f} frames/s "
          f"at 1080p (the CPU DIS interpolation measured here: {1 / m['cpu_dis_interp_s']:.1f} frames/s)")
    rows = []
    for seed in range(args.seeds):
        jobs, overhead, figures = chunk_work(episode_labels(random.Random(seed)), m)
        for n in (int(x) for x in args.servers.split(",")):
            r = schedule(jobs, n, overhead_s=0.0, rng=random.Random(seed))
            floor = max(figures["driver_decode_s"], figures["driver_encode_s"] / args.driver_cores)
            rows.append({"seed": seed, "servers": n, "makespan_s": r.makespan_s, "utilisation": r.utilisation,
                         "lower_bound_s": r.lower_bound_s, "mean_transfer_s": overhead, "driver_floor_s": floor,
                         **figures})
    print(f"\n{'servers':>7} {'chunks':>7} {'wall (sim)':>11} {'bound':>9} {'util':>6} {'driver floor':>13} "
          f"{'wall >=':>9}")
    for n in sorted({r["servers"] for r in rows}):
        rs = [r for r in rows if r["servers"] == n]
        mean = {k: float(np.mean([r[k] for r in rs])) for k in ("makespan_s", "lower_bound_s", "utilisation",
                                                                 "driver_floor_s", "chunks")}
        floor = max(mean["makespan_s"], mean["driver_floor_s"])
        print(f"{n:>7} {mean['chunks']:>7.0f} {mean['makespan_s'] / 60:>9.1f} m {mean['lower_bound_s'] / 60:>7.1f} m "
              f"{100 * mean['utilisation']:>5.1f}% {mean['driver_floor_s'] / 60:>11.1f} m {floor / 60:>7.1f} m")
    first = rows[0]
    print(f"\nepisode: {first['frames_in']} frames in, {first['frames_out']} out, {first['interpolated']} "
          f"interpolated; {first['chunks']} chunks sent (none of copies only), "
          f"{first['mean_chunk_src_frames']} source frames on average "
          "(seed 0)")
    held = first["gpu_interp_s"] + first["server_chunk_io_s"] + first["transfer_s"]
    print("a server's time per episode: " + ", ".join(
        f"{k.removesuffix('_s')} {first[k] / 60:.1f} min ({100 * first[k] / held:.0f}%)"
        for k in ("gpu_interp_s", "server_chunk_io_s", "transfer_s")))
    if args.json:
        args.json.write_text(json.dumps({"measured": m, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
