"""With no server answering and ``--comfyui DIR``, the driver starts a local ComfyUI
(base directory inside the run folder, in-memory database), renders, and stops it;
nothing is written into the ComfyUI checkout."""

from __future__ import annotations

import json
import os

import pytest

from driver.cli import main
from driver.comfy.client import ComfyClient
from driver.errors import DriverError
from driver.storyboard import REPO_ROOT
from tests.harness.comfy import free_port

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
    assert code == 0, (run_dir / ".comfyui" / "comfyui.log").read_text()[-3000:]
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    att = manifest["shots"]["S01T02"]["jobs"]["S01T02-video"]["attempts"][0]
    assert manifest["shots"]["S01T02"]["status"] == "done" and att["server"] != dead
    with pytest.raises(DriverError):  # stopped at the end of the run
        ComfyClient(att["server"], request_timeout=2).system_stats()
    assert (run_dir / ".comfyui" / "custom_nodes" / "anime_pipeline").is_symlink()
    assert _tree(comfy_install.root) == before
