"""Learned upscaling and interpolation, side by side in one run (a benchmark, not a test).

Run with ComfyUI's Python (it calls ComfyUI's own nodes and comfy.utils.tiled_scale):

    PYTHONPATH=/path/to/ComfyUI:.:custom_nodes $COMFYUI_PYTHON -m benchmarks.bench_enhance [--device cpu|cuda]
        [--frames 6] [--model compact|anime6b] [--pairs 3] [--repeat 2] [--skip-upscale] [--skip-interp]

1. Upscale: the same 1280x720 clip (``--frames``, a soft panning texture) and the same model
   through core ``ImageUpscaleWithModel`` and ``AP_UpscaleVideo`` (default settings: fp16 on
   CUDA, fp32 on CPU; on CUDA also forced fp32), each ``--repeat`` times in alternating order,
   the fastest run of each kept. Frames per second and peak memory: on CUDA
   ``torch.cuda.max_memory_allocated`` (device), on CPU the peak resident set size of a fresh
   process per method above its level before the call (each method runs in its own child
   process, so peaks do not mix). Wall seconds and the process's CPU seconds (steadier than
   wall time on a shared machine). The max |diff| of each output to core's is printed too.
2. Interpolation cost per synthesised frame at 1280x720 (t = 1/2, ``--pairs`` source pairs):
   RIFE v4.7-v4.9 and v4.6 layouts (``core/rife.py``) vs the DIS optical-flow default
   (``FlowInterpolator``, 2 OpenCV threads).

Models are random-weight files at the real sizes (Compact = realesr-animevideov3: 64 features,
16 convs, x4; anime6b = RealESRGAN_x4plus_anime_6B: RRDB, 64 features, 6 blocks, x4; RIFE at
its fixed widths), written to a temporary folder. Random weights cost the same time and memory
as trained ones, but say nothing about quality: output quality cannot be measured without the
real weights, which this benchmark does not have.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
W, H = 1280, 720


def _setup(device: str):
    try:  # run with ComfyUI's Python, the ComfyUI folder and custom_nodes/ on PYTHONPATH (module docstring)
        import comfy.cli_args
    except ImportError:
        sys.exit("run with ComfyUI's Python and PYTHONPATH=<ComfyUI folder>:.:custom_nodes, from the repository root")

    comfy.cli_args.args.cpu = device == "cpu"
    import cv2

    cv2.setNumThreads(2)


def _clip(n: int):
    import torch

    from devkit.synthetic_clips import panning_texture

    return torch.from_numpy(panning_texture(n, H, W, seed=1))


def _upscale_model(kind: str, folder: Path):
    import comfy.utils
    import torch
    from spandrel import ModelLoader

    from devkit.harness import tiny_enhance_models as tm

    path = folder / f"{kind}.pth"
    if kind == "compact":
        torch.save({"params": tm.random_state(tm.compact_shapes(nf=64, num_conv=16, scale=4), 1)}, path)
    else:
        torch.save({"params_ema": tm.random_state(tm.rrdb_shapes(nf=64, blocks=6), 2, gain=0.5)}, path)
    return ModelLoader().load_from_state_dict(comfy.utils.load_torch_file(str(path), safe_load=True)).eval()


def _peak_start(device: str):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_end(device: str, start: int) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start) / 2**20


def one_upscale(method: str, device: str, frames: int, kind: str, out_dir: Path) -> dict:
    """Child process: one method on the clip; saves its output for the parent's comparison."""
    _setup(device)
    import torch
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    from anime_pipeline.nodes.upscale import UpscaleVideo

    with tempfile.TemporaryDirectory() as tmp:
        model = _upscale_model(kind, Path(tmp))
    clip = _clip(frames)
    start = _peak_start(device)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        if method == "core":
            out = ImageUpscaleWithModel.execute(model, clip)[0]
            summary = {}
        else:
            out, text = UpscaleVideo().upscale(model, clip, precision="fp32" if method == "ours_fp32" else "auto")
            summary = json.loads(text)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_end(device, start)
    torch.save(out.cpu(), out_dir / f"{method}.pt")
    return {"method": method, "fps": frames / seconds, "seconds": seconds, "cpu_s": cpu, "peak_mib": peak,
            "batch_used": summary.get("batch_used"), "tile_used": summary.get("tile_used"),
            "dtype": summary.get("dtype", "float32"), "out_shape": list(out.shape)}


def bench_upscale(args) -> None:
    methods = ["core", "ours"] + (["ours_fp32"] if args.device == "cuda" else [])
    print(f"\n1. Upscale {args.frames} frames of {W}x{H}, model {args.model} (x4), device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        best: dict[str, dict] = {}
        for rep in range(args.repeat):  # alternating order, best of the repeats (a shared machine's load varies)
            for method in methods if rep % 2 == 0 else methods[::-1]:
                cmd = [sys.executable, __file__, "--one", method, "--device", args.device, "--frames",
                       str(args.frames), "--model", args.model, "--out", tmp]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{method} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                if method not in best or row["seconds"] < best[method]["seconds"]:
                    best[method] = row
        rows = [best[m] for m in methods]
        import torch

        ref = torch.load(Path(tmp) / "core.pt")
        print(f"   {'method':<24}{'frames/s':>10}{'s':>9}{'CPU s':>9}{'peak MiB':>10}{'batch':>7}{'tile':>6}  dtype"
              "     max|diff| to core")
        for r in rows:
            diff = float((torch.load(Path(tmp) / f"{r['method']}.pt") - ref).abs().max())
            name = {"core": "ImageUpscaleWithModel", "ours": "AP_UpscaleVideo", "ours_fp32": "AP_UpscaleVideo fp32"}
            print(f"   {name[r['method']]:<24}{r['fps']:>10.3f}{r['seconds']:>9.1f}{r['cpu_s']:>9.1f}"
                  f"{r['peak_mib']:>10.0f}"
                  f"{r['batch_used'] or '-':>7}{r['tile_used'] or 512:>6}  {r['dtype']:<9} {diff:.2e}")


def bench_interp(args) -> None:
    _setup(args.device)
    import numpy as np
    import torch

    from anime_pipeline.core.interpolate import FlowInterpolator
    from anime_pipeline.core.rife import RifeInterpolator, load_ifnet
    from devkit.harness import tiny_enhance_models as tm

    clip = _clip(args.pairs + 1).numpy()
    print(f"\n2. Interpolation at {W}x{H}, t = 1/2, {args.pairs} pairs, device {args.device}: ms per synthesised frame")
    rows = [("DIS optical flow (FlowInterpolator)", FlowInterpolator(), None)]
    dtypes = [torch.float32] + ([torch.float16] if args.device == "cuda" else [])
    for layout, label in (("4.7", "RIFE v4.7-v4.9"), ("4.6", "RIFE v4.6")):
        net = load_ifnet(tm.random_state(tm.rife_shapes(layout), 3, gain=0.5))
        for dtype in dtypes:
            rows.append((f"{label} {str(dtype)[6:]}", RifeInterpolator(net, dtype=dtype), args.device))
    for name, interp, device in rows:
        ctx = interp.on(device) if device else _null()
        with ctx:
            interp.interpolate(clip[0], clip[1], [0.5])  # warm-up (cuDNN autotune, allocations)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(args.pairs):
                out = interp.interpolate(clip[i], clip[i + 1], [0.5])
            if device == "cuda":
                torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / args.pairs * 1000
        assert out.shape == (1, H, W, 3) and np.isfinite(out).all()
        print(f"   {name:<40}{ms:>10.1f} ms")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--model", choices=["compact", "anime6b"], default="compact")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="upscale runs per method, alternating order; best kept")
    ap.add_argument("--skip-upscale", action="store_true")
    ap.add_argument("--skip-interp", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_upscale(args.one, args.device, args.frames, args.model, Path(args.out))))
        return
    if not args.skip_upscale:
        bench_upscale(args)
    if not args.skip_interp:
        bench_interp(args)


if __name__ == "__main__":
    main()
