"""Driver overhead per job vs ComfyUI's websocket example and comfy-cli, side by side
against the same CPU ComfyUI server, in one run (a benchmark, not a test).

    cd /work/main && .venv/bin/python -m benchmarks.bench_driver_overhead [--jobs 20] [--comfy-cli PATH]

Overhead per job = the client's wall time for the job minus the server's own execution
time (``execution_success`` - ``execution_start`` timestamps in ``/history``). Every
approach runs the same kind of job: the driver's ``held_static`` template on a 64x64
keyframe, 2 frames, through LoadImage -> ImageScale -> RepeatImageBatch -> CreateVideo ->
SaveVideo, each job on its own keyframe so nothing is served from the server's cache.

* driver: ``python -m driver run`` on a 20-shot storyboard, in-process; per job, the time
  the scheduler spends on it: compile + hash + upload + submit + websocket + history +
  download + sha256 + atomic manifest writes (less the wait for the pool's slot while
  another shot's job holds the server: the server's queue, not overhead). One-time costs (config, plan, connect,
  preflight, cut, dailies) are reported separately.
* websocket example: the functions of ComfyUI's ``script_examples/websockets_api_example.py``
  (loaded from the ComfyUI checkout, unmodified): queue with its client id, wait for
  ``executing`` null, read history, download through ``/view``. Keyframe uploads are done
  beforehand, outside its timing (it has no upload step).
* comfy-cli: ``comfy run --workflow F --wait --json`` per job (a new process each time:
  that is how it is used from scripts); it does not download outputs. Skipped when
  comfy-cli is not installed (``pip install comfy-cli`` or ``--comfy-cli PATH``).

Starts its own server with the test harness (``COMFYUI_DIR``) unless ``--server URL``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import numpy as np
import websocket
from PIL import Image

from driver.cli import main as driver_main
from driver.comfy.client import ComfyClient
from driver.farm.pool import ServerPool
from driver.render import scheduler as scheduler_module


def keyframes(folder: Path, n: int, offset: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(offset)
    paths = []
    for i in range(n):
        p = folder / f"k{offset + i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def execution_s(client: ComfyClient, prompt_id: str) -> float:
    entry = client.history(prompt_id)
    stamps = {ev: d.get("timestamp") for ev, d in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0


def run_driver(url: str, work: Path, n: int) -> tuple[list[float], float]:
    folder = work / "driver"
    paths = keyframes(folder / "kf", n, 0)
    shots = [{"scene": 1 + i // 20, "take": 1 + i % 20, "generation_approach": "held_frame_static",
              "duration_s": 2 / 24, "seed": i, "keyframes": {"hero": f"kf/{p.name}"}} for i, p in enumerate(paths)]
    sb = folder / "bench.json"
    sb.write_text(json.dumps({"version": 3, "project": "BENCH", "episode": 1, "model_profile": "wan22_sdxl",
                              "delivery": {"width": 64, "height": 64, "fps": 24}, "shots": shots}))
    per_job: dict[str, float] = {}
    original, acquire = scheduler_module.Scheduler._ensure, ServerPool.acquire
    waited = threading.local()  # every run is a pool (one server: a pool of one) whose shot threads wait
    # for its slot while another shot's job renders: that wait is the server's queue, not driver overhead

    span: list[float] = []  # when the first job started and the last one ended

    def timed(self, job, *args):
        waited.s = 0.0
        t0 = time.perf_counter()
        try:
            return original(self, job, *args)
        finally:
            per_job[job.id] = time.perf_counter() - t0 - waited.s
            span[:] = [min([*span[:1], t0]), time.perf_counter()]

    def counted(self, **kw):
        t0 = time.perf_counter()
        try:
            return acquire(self, **kw)
        finally:
            waited.s = getattr(waited, "s", 0.0) + time.perf_counter() - t0

    scheduler_module.Scheduler._ensure, ServerPool.acquire = timed, counted  # type: ignore[method-assign]
    t0 = time.perf_counter()
    try:
        code = driver_main(["run", str(sb), "--server", url, "--out", str(folder / "run"), "--plain"])
    finally:
        scheduler_module.Scheduler._ensure, ServerPool.acquire = original, acquire  # type: ignore[method-assign]
    total = time.perf_counter() - t0
    assert code == 0, f"driver exited {code}"
    manifest = json.loads((folder / "run" / "run_manifest.json").read_text())
    exec_s = {f"{s}-video": manifest["shots"][s]["jobs"][f"{s}-video"]["attempts"][0]["timings"]["execution_s"]
              for s in manifest["shots"]}
    overheads = [per_job[j] - exec_s[j] for j in sorted(exec_s)]
    return overheads, total - (span[1] - span[0])  # shot threads overlap: one-time = outside the jobs' span


def template_jobs(client: ComfyClient, work: Path, n: int, offset: int, tag: str) -> list[dict]:
    """Workflows from the driver's held_static template, one uploaded keyframe each."""
    template = json.loads((REPO / "workflows" / "held_static.api.json").read_text())
    jobs = []
    for i, p in enumerate(keyframes(work / tag, n, offset)):
        prompt = json.loads(json.dumps(template))
        prompt["1"]["inputs"]["image"] = client.upload_image(p, subfolder=f"bench_{tag}")
        prompt["2"]["inputs"].update(width=64, height=64)
        prompt["3"]["inputs"]["amount"] = 2
        prompt["5"]["inputs"]["filename_prefix"] = f"bench_{tag}/{i:03d}"
        jobs.append(prompt)
    return jobs


def load_ws_example(comfy_dir: Path, address: str) -> dict:
    """The example's imports and function definitions, executed as they are."""
    source = (comfy_dir / "script_examples" / "websockets_api_example.py").read_text()
    tree = ast.parse(source)
    keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    namespace = {"server_address": address, "client_id": str(uuid.uuid4())}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "websockets_api_example.py", "exec"), namespace)
    namespace["server_address"] = address
    return namespace


def run_ws_example(client: ComfyClient, comfy_dir: Path, work: Path, n: int) -> list[float]:
    address = client.url.removeprefix("http://")
    ex = load_ws_example(comfy_dir, address)
    jobs = template_jobs(client, work, n, 1000, "wsexample")
    ws = websocket.WebSocket()
    ws.connect(f"ws://{address}/ws?clientId={ex['client_id']}")
    overheads = []
    queued: list[str] = []
    original_queue = ex["queue_prompt"]
    ex["queue_prompt"] = lambda prompt, prompt_id: (queued.append(prompt_id), original_queue(prompt, prompt_id))
    try:
        for prompt in jobs:
            t0 = time.perf_counter()
            images = ex["get_images"](ws, prompt)
            wall = time.perf_counter() - t0
            assert any(images.values())
            overheads.append(wall - execution_s(client, queued[-1]))
    finally:
        ws.close()
    return overheads


def run_comfy_cli(client: ComfyClient, exe: str, work: Path, n: int) -> list[float]:
    jobs = template_jobs(client, work, n, 2000, "comfycli")
    port = client.url.rsplit(":", 1)[1]
    env = {**os.environ, "HOME": str(work / "cli_home"), "COMFY_NO_WATCH": "1"}
    overheads = []
    for i, prompt in enumerate(jobs):
        wf = work / "comfycli" / f"wf{i:03d}.json"
        wf.write_text(json.dumps(prompt))
        t0 = time.perf_counter()
        out = subprocess.run([exe, "--skip-prompt", "run", "--workflow", str(wf), "--wait", "--host", "127.0.0.1",
                              "--port", port, "--json", "--no-watch"], capture_output=True, text=True, env=env,
                             timeout=300)
        wall = time.perf_counter() - t0
        envelope = json.loads(out.stdout.strip().splitlines()[-1])
        assert envelope["ok"], out.stdout[-2000:]
        overheads.append(wall - execution_s(client, envelope["data"]["prompt_id"]))
    return overheads


def stats(xs: list[float]) -> dict:
    ms = sorted(x * 1000 for x in xs)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "mean_ms": round(statistics.fmean(ms), 1),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1), "min_ms": round(ms[0], 1), "max_ms": round(ms[-1], 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--server", help="use this ComfyUI (with the pack) instead of starting one")
    p.add_argument("--comfy-cli", default=shutil.which("comfy"), help="comfy-cli executable")
    p.add_argument("--out", type=Path, default=REPO / "bench_out" / "driver_overhead.json")
    args = p.parse_args()
    from devkit.harness.comfy import find_comfyui, start_server

    install, reason = find_comfyui()
    comfy_dir = install.root if install else Path(os.environ.get("COMFYUI_DIR", Path.home() / "ComfyUI"))
    work = Path(tempfile.mkdtemp(prefix="bench_driver_"))
    server = None
    if args.server:
        url = args.server
    else:
        if install is None:
            sys.exit(f"no ComfyUI to start: {reason}")
        server = start_server(work / "server", install=install)
        url = server.url
    client = ComfyClient(url)
    results = {}
    try:
        warm = template_jobs(client, work, 1, 9000, "warmup")[0]
        client.run(warm, prompt_id=f"warmup-{uuid.uuid4().hex}")
        driver_overheads, one_time = run_driver(url, work, args.jobs)
        results["driver (python -m driver run)"] = {**stats(driver_overheads), "one_time_s": round(one_time, 2)}
        results["websockets_api_example.py"] = stats(run_ws_example(client, comfy_dir, work, args.jobs))
        if args.comfy_cli:
            results["comfy run (comfy-cli)"] = stats(run_comfy_cli(client, args.comfy_cli, work, args.jobs))
        else:
            results["comfy run (comfy-cli)"] = {"skipped": "comfy-cli not installed (pip install comfy-cli)"}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nOverhead per job (client wall time - server execution time), {args.jobs} jobs, server {url}:")
    print(f"{'approach':<32} {'median':>9} {'mean':>9} {'p90':>9} {'min':>9} {'max':>9}")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<32} skipped: {r['skipped']}")
            continue
        print(f"{name:<32} {r['median_ms']:>7.1f}ms {r['mean_ms']:>7.1f}ms {r['p90_ms']:>7.1f}ms "
              f"{r['min_ms']:>7.1f}ms {r['max_ms']:>7.1f}ms")
    d = results["driver (python -m driver run)"]
    print(f"driver one-time costs per run (config, plan, connect, preflight, cut, dailies): {d['one_time_s']:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"jobs": args.jobs, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
