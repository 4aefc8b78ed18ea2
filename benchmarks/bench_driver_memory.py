"""The driver's peak memory for a large delivery, before and after, in one run:

    python -m benchmarks.bench_driver_memory [--size 4096] [--frames 16] [--before REF]

Makes a ``--size`` x ``--size`` H.264 clip of ``--frames`` frames, then, in a fresh Python
process per code version, runs what the driver does with a delivered clip once ComfyUI has
made it: stream it from a ``/view``-like HTTP server to the attempt folder
(``ComfyClient.download``), check it (``verify_file``), make it the shot's asset
(``Assets``-style ``place``) and cut the episode (``write_cut``). Prints each process's
peak resident memory (``VmHWM``) and time. ``--before`` is a git ref whose ``driver``
and pack are extracted (``git archive``) into a temporary folder for the "before" figures
(default ``main``); the "after" figures are this checkout's."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path
from types import SimpleNamespace
t0 = time.monotonic()
clip, url, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
from driver.comfy.client import ComfyClient
from driver.outputs.verify import verify_file
from driver.outputs import assets
from driver.outputs.assemble import write_cut
import av


def hwm():  # peak resident memory of this process, MB (VmHWM: ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


base = hwm()
with av.open(str(clip)) as c:
    s = c.streams.video[0]; w, h, n = s.width, s.height, s.frames
dest = work / "attempts" / "clip.mp4"
dest.parent.mkdir(parents=True, exist_ok=True)
ComfyClient(url).download({"filename": clip.name, "subfolder": "", "type": "output"}, dest)
after_download = hwm()
problem = verify_file(dest, n)
assert problem is None, problem
assets.place(dest, work / "clips" / "clip.mp4")
shot = SimpleNamespace(id="S01T01", frames=lambda fps: n)
sb = SimpleNamespace(delivery=SimpleNamespace(width=w, height=h, fps=8.0), shots=[shot])
info = write_cut(sb, {"S01T01": work / "clips" / "clip.mp4"}, work / "cut.mp4")
peak = hwm()
print(json.dumps({"imports_mb": base, "download_mb": after_download, "peak_mb": peak,
                  "frames": info["frames"], "seconds": round(time.monotonic() - t0, 1)}))
"""


def make_clip(path: Path, size: int, frames: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size // 16, size // 16, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 8 * i, axis=1), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """``GET /view?filename=X`` -> ``folder/X``, streamed (what ComfyUI's /view does for the driver)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            from urllib.parse import parse_qs, urlsplit
            name = parse_qs(urlsplit(self.path).query)["filename"][0]
            path = folder / Path(name).name
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    self.wfile.write(block)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def extract(ref: str, dest: Path) -> Path:
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "driver", "custom_nodes/anime_pipeline"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def measure(code_root: Path, clip: Path, url: str, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{code_root}{os.pathsep}{code_root / 'custom_nodes'}"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(clip), url, str(work)], env=env, cwd=work,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--before", default="main", help="git ref of the 'before' code (default main)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        clip = tmp_path / "served" / "clip.mp4"
        clip.parent.mkdir()
        t0 = time.monotonic()
        make_clip(clip, args.size, args.frames)
        print(f"clip: {args.size}x{args.size}, {args.frames} frames, {clip.stat().st_size / 1e6:.1f} MB "
              f"(made in {time.monotonic() - t0:.0f} s); load average {os.getloadavg()[0]:.2f}")
        server, url = serve(clip.parent)
        try:
            rows = []
            before = extract(args.before, tmp_path / "before") if args.before else None
            for label, root in (("before", before), ("after", REPO)):
                if root is None:
                    continue
                work = tmp_path / f"work_{label}"
                work.mkdir()
                rows.append((label, measure(root, clip, url, work)))
        finally:
            server.shutdown()
    print(f"{'code':<8} {'imports MB':>11} {'after download MB':>18} {'peak MB':>9} {'seconds':>8}")
    for label, r in rows:
        print(f"{label:<8} {r['imports_mb']:>11.0f} {r['download_mb']:>18.0f} {r['peak_mb']:>9.0f} "
              f"{r['seconds']:>8.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
