"""With no server answering, the driver starts a local ComfyUI (``--comfyui DIR``, or by default the one the
finder gives: ``COMFYUI_DIR`` or the managed install), renders, and stops it: at the end, and when the driver is
stopped by SIGINT, SIGTERM or SIGKILL at any time. Nothing is written into the ComfyUI tree, the child sees none
of the driver's secrets, and a rerun with nothing to render starts no server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driver.cli import main
from driver.comfy.client import ComfyClient
from driver.errors import DriverError
from driver.story.storyboard import REPO_ROOT
from devkit.harness.comfy import free_port

pytestmark = pytest.mark.integration


def _tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".venv", "venv", ".git")]
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[p] = os.stat(p, follow_symlinks=False).st_mtime_ns
    return out


def test_driver_starts_and_stops_a_local_comfyui(comfy_install, tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYUI_PYTHON", str(comfy_install.python))
    config = tmp_path / "local.yaml"
    config.write_text(json.dumps({"comfyui_args": ["--cpu", "--disable-api-nodes"]}))
    before = _tree(comfy_install.root)
    run_dir = tmp_path / "run"
    dead = f"http://127.0.0.1:{free_port()}"
    code = main(["run", str(REPO_ROOT / "storyboards" / "demo" / "demo.json"), "--only", "S01T02", "--server", dead,
                 "--comfyui", str(comfy_install.root), "--config", str(config), "--out", str(run_dir), "--plain"])
    assert code == 0, _logs(run_dir)
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    att = manifest["shots"]["S01T02"]["jobs"]["S01T02-video"]["attempts"][0]
    assert manifest["shots"]["S01T02"]["status"] == "done" and att["server"] != dead
    with pytest.raises(DriverError):  # stopped at the end of the run
        ComfyClient(att["server"], request_timeout=2).system_stats()
    assert (run_dir / ".comfyui" / "custom_nodes" / "anime_pipeline").is_symlink()
    assert _tree(comfy_install.root) == before


def _logs(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted((run_dir / ".comfyui" / "logs").glob("*.log")))


def _comfy_pids(base: Path) -> list[int]:
    """Processes running ComfyUI's main.py with ``base`` as their base directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"main.py" in cmd and str(base).encode() in cmd:
            pids.append(int(proc.name))
    return pids


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"


def test_default_server_is_the_found_comfyui_and_a_rerun_starts_none(comfy_install, tmp_path):
    config = tmp_path / "local.yaml"
    config.write_text(json.dumps({"servers": [f"http://127.0.0.1:{free_port()}"], "comfyui_args": ["--disable-api-nodes"]}))
    run_dir = tmp_path / "run"
    argv = ["run", str(DEMO), "--only", "S01T02", "--config", str(config), "--out", str(run_dir), "--plain"]
    assert main(argv) == 0, _logs(run_dir)
    logs = sorted((run_dir / ".comfyui" / "logs").glob("comfyui-*.log"))
    assert len(logs) == 1 and "Device: cpu" in logs[0].read_text()  # no GPU here: started with --cpu
    assert main(argv) == 0
    assert sorted((run_dir / ".comfyui" / "logs").glob("comfyui-*.log")) == logs  # nothing to render: no start
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    assert manifest["shots"]["S01T02"]["status"] == "done"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_driver_stops_its_comfyui(comfy_install, tmp_path, sig):
    """The signal lands while the driver's ComfyUI is starting (the window where it was orphaned); the child
    must be gone within seconds, and must not have seen the driver's RUNPOD_API_KEY. The rerun resumes."""
    run_dir = tmp_path / "run"
    config = tmp_path / "local.yaml"
    config.write_text(json.dumps({"servers": [f"http://127.0.0.1:{free_port()}"], "comfyui_args": ["--disable-api-nodes"]}))
    argv = [sys.executable, "-m", "driver", "run", str(DEMO), "--only", "S01T02", "--config", str(config),
            "--out", str(run_dir), "--plain"]
    env = {**os.environ, "RUNPOD_API_KEY": "rp_secret_for_the_test"}
    driver = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = run_dir / ".comfyui"
        pids = _wait(lambda: _comfy_pids(base), 120, "the driver to start its ComfyUI")
        environ = Path(f"/proc/{pids[0]}/environ").read_bytes()
        assert b"RUNPOD_API_KEY" not in environ and b"PATH=" in environ
        driver.send_signal(sig)
        code = driver.wait(60)
        out = driver.stdout.read().decode(errors="replace")
        _wait(lambda: not _comfy_pids(base), 30, f"ComfyUI to stop after {sig.name} of the driver")
        if sig != signal.SIGKILL:
            assert code == 130 and "rerun the same command to resume" in out, out
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in _comfy_pids(run_dir / ".comfyui"):
            os.kill(pid, signal.SIGKILL)
    assert main(argv[3:]) == 0, _logs(run_dir)


def test_comfyui_status_and_start(comfy_install, tmp_path, capsys):
    """``comfyui status`` starts the ComfyUI the driver would use and finds every AP_* node; ``comfyui start``
    (managed installs) serves the pack on the given port until stopped."""
    from anime_pipeline import NODE_CLASS_MAPPINGS

    assert main(["comfyui", "status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["check"]["nodes"] == len(NODE_CLASS_MAPPINGS) and info["driver_uses"]["root"] == str(comfy_install.root)
    if comfy_install.origin != "managed":
        return  # `start` runs the managed install; the finder gave COMFYUI_DIR here
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "driver", "comfyui", "start", "--port", str(port)], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = ComfyClient(f"http://127.0.0.1:{port}", request_timeout=5)

        def answers():
            try:
                return "AP_MotionGate" in client.object_info()
            except DriverError:
                return False

        _wait(answers, 120, "comfyui start to serve the pack")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) in (0, 130, -signal.SIGINT)
        assert not answers()
    finally:
        if proc.poll() is None:
            proc.kill()
