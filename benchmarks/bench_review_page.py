"""Review page at episode scale: a synthetic run folder of N shots (default 300) with 3
attempts of the clip each (gate reports with failing gates, reasons and frames), served
by the review app and opened in headless Chromium (the system browser, via Playwright).

Measures, in the same browser:
* time to interactive: navigation start -> the page's script has rendered the timeline
  and the first shot and handles keys (``window.review.ready``, the page's own clock),
  and the wall time of ``goto`` until then, seen from Python;
* key responsiveness: ArrowRight pressed through the shots; per key, the time from the
  keydown to the next painted frame (in the page: handler + layout + paint);
* memory of the tab: JS heap (CDP ``Performance.getMetrics``) and the renderer
  processes' proportional set size (PSS, /proc);
* sizes: the page, the state JSON, and the server's time for ``/api/state``.

    python -m benchmarks.bench_review_page [--shots 300] [--attempts 3] [--keys 100]

Target (issue #15): interactive under 1 s, keys responsive."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from devkit.harness.browser import VIEWPORT, find_chromium, launch
from driver.files import file_record
from driver.outputs.manifest import Manifest
from driver.outputs.records import MANIFEST_VERSION
from driver.review.serve import make_server, running

GATES = ("artifact", "temporal", "keyframe_fidelity", "seam")


def _clip(path: Path, frames: int = 24, size: int = 64) -> None:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=24)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((size, size, 3), (i * 10 % 255, 90, 160), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _report(k: int, passed: bool) -> dict:
    gates = [{"input": f"gate_{g + 1}", "name": name, "passed": passed or g != k % 4,
              "metrics": {"score": 0.5 + g / 10, "frames_checked": 24},
              "failed_frames": [] if passed or g != k % 4 else [3, 7, 11],
              "reasons": [] if passed or g != k % 4 else [f"start frame 0: ssim 0.{k % 9}49 < 0.8"]}
             for g, name in enumerate(GATES)]
    return {"version": 1, "passed": passed, "summary": "quality " + ("passed" if passed else "FAILED"),
            "frames": {"count": 24, "width": 64, "height": 64}, "gates": gates}


def build_run(root: Path, n_shots: int, n_attempts: int) -> Path:
    """The run folder: storyboard, keyframes, one clip file per attempt (hard links of
    one small clip), manifest, no approvals yet."""
    sb_dir, run = root / "sb", root / "run"
    for d in (sb_dir, run / "keyframes", run / "attempts", run / "clips"):
        d.mkdir(parents=True, exist_ok=True)
    clip = root / "clip.mp4"
    _clip(clip)
    shots, recs = [], {}
    for i in range(n_shots):
        scene, take = i // 10 + 1, i % 10 + 1
        sid = f"S{scene:02d}T{take:02d}"
        img = sb_dir / f"{sid}.png"
        Image.fromarray(np.full((160, 96, 3), (i % 255, (3 * i) % 255, 120), np.uint8)).save(img)
        shots.append({"scene": scene, "take": take, "generation_approach": "held_frame_static",
                      "duration_s": 1.0 + (i % 4) * 0.5, "seed": i, "hero_prompt": f"shot {sid}, dusk, rooftops",
                      "keyframes": {"hero": img.name}, "notes": f"storyboard note {i}"})
        kf = run / "keyframes" / f"B_EP001_{sid}_hero.png"
        shutil.copyfile(img, kf)
        attempts = []
        for a in range(1, n_attempts + 1):
            f = run / "attempts" / f"B_EP001_{sid}_video_a{a}.mp4"
            f.hardlink_to(clip)
            passed = a == n_attempts
            attempts.append({"attempt": a, "seed": i * 10 + a, "status": "done" if passed else "gate_failed",
                             "outputs": [{**file_record(run, f), "role": "video"}], "gate_report": _report(i + a,
                                                                                                         passed),
                             "passed": passed, "score": 1.0 if passed else 0.5, "timings": {"execution_s": 60.0}})
        (run / "clips" / f.name.replace(f"_a{n_attempts}", "")).hardlink_to(clip)
        video = {**file_record(run, run / "clips" / f.name.replace(f"_a{n_attempts}", "")), "attempt": n_attempts}
        recs[sid] = {"approach": "held_frame_static", "status": "done", "error": None,
                     "assets": {"hero": file_record(run, kf), "video": video},
                     "jobs": {f"{sid}-video": {"stage": "video", "status": "done", "selected_attempt": n_attempts,
                                               "attempts": attempts}}}
    sb = sb_dir / "storyboard.json"
    sb.write_text(json.dumps({"version": 3, "project": "BENCH", "episode": 1, "title": "benchmark",
                              "delivery": {"width": 64, "height": 64, "fps": 24}, "model_profile": "wan22_sdxl",
                              "shots": shots}))
    Manifest(run / "run_manifest.json", {"manifest_version": MANIFEST_VERSION, "run_id": "BENCH-EP001-x",
                                         "storyboard": {"path": str(sb), "project": "BENCH", "episode": 1},
                                         "shots": recs, "episode": {}}).save()
    return run


def _renderers() -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"--type=renderer" in (proc / "cmdline").read_bytes():
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


def _pss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def measure(run: Path, keys: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path, why = find_chromium()
    if path is None:
        raise SystemExit(why)
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with running(make_server(run, port=port)), sync_playwright() as p:
        before = _renderers()
        browser = launch(p, path)
        page = browser.new_page(viewport=VIEWPORT)
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
        page.wait_for_function("() => window.review && window.review.ready")
        out["goto_to_interactive_s"] = time.perf_counter() - t0
        out["interactive_s"] = page.evaluate("window.review.ready") / 1000
        out["tiles"] = page.evaluate("document.querySelectorAll('.tile').length")
        for key, label in (("F13", "idle_key"), ("ArrowRight", "key")):  # F13: no action, the method's floor
            lat = page.evaluate("""async ([n, key]) => {
                const out = [];
                for (let i = 0; i < n; i++) {
                    const t = performance.now();
                    document.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
                    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
                    out.push(performance.now() - t);
                }
                return out; }""", [keys, key])
            out[f"{label}_ms_median"] = statistics.median(lat)
            out[f"{label}_ms_p95"] = sorted(lat)[int(0.95 * len(lat)) - 1]
            out[f"{label}_ms_max"] = max(lat)
        out["selected_after_keys"] = page.evaluate("window.review.selected()")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        out["js_heap_used_mb"] = metrics["JSHeapUsedSize"] / 2**20
        out["dom_nodes"] = int(metrics["Nodes"])
        out["renderer_pss_mb"] = _pss_mb(_renderers() - before)  # the renderers this browser started
        out["page_kb"] = len(page.content().encode()) / 1024
        t = time.perf_counter()
        body = page.evaluate("fetch('api/state').then(r => r.text())")
        out["api_state_s"] = time.perf_counter() - t
        out["state_kb"] = len(body.encode()) / 1024
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=int, default=300)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--keys", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run = build_run(Path(tmp), args.shots, args.attempts)
        print(f"run folder: {args.shots} shots x {args.attempts} attempts, built in {time.perf_counter() - t:.1f} s")
        for k, v in measure(run, args.keys).items():
            print(f"  {k:<24} {v:.3f}" if isinstance(v, float) else f"  {k:<24} {v}")


if __name__ == "__main__":
    main()
