"""The images' build-time smoke test (``docker/smoke_test.py``) run for real against the
development ComfyUI, as the Dockerfiles run it in ``/opt/venv`` (no Docker engine here):
it passes with the pack linked in, and fails when ComfyUI runs in another Python than
the expected one, when the pinned version differs, or when the pack cannot be imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devkit.harness.comfy import REPO, prepare_base_dir

pytestmark = pytest.mark.integration

SMOKE = REPO / "docker" / "smoke_test.py"


def _smoke(install, *args):
    # The development install has no torchaudio (a CPU build); the images install it with torch.
    cmd = [str(install.python), str(SMOKE), "--comfyui", str(install.root), "--allow-missing", "torchaudio", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_the_smoke_test_passes_where_comfyui_loads_the_pack(comfy_install, tmp_path):
    base = prepare_base_dir(tmp_path / "base", with_test_nodes=False)
    prefix = subprocess.run([str(comfy_install.python), "-c", "import sys; print(sys.prefix)"], capture_output=True,
                            text=True, check=True).stdout.strip()
    run = _smoke(comfy_install, "--base-directory", str(base), "--expect-prefix", prefix,
                 "--comfyui-version", comfy_install.version)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loads anime_pipeline" in run.stdout

    run = _smoke(comfy_install, "--base-directory", str(base), "--expect-prefix", sys.prefix + "-elsewhere",
                 "--comfyui-version", "0.0.1")
    assert run.returncode == 1
    assert "not in" in run.stderr and "0.0.1 is pinned" in run.stderr


def test_the_smoke_test_fails_when_the_pack_does_not_import(comfy_install, tmp_path):
    broken = tmp_path / "base" / "custom_nodes" / "anime_pipeline"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('a requirement is missing')\n")
    run = _smoke(comfy_install, "--base-directory", str(tmp_path / "base"))
    assert run.returncode == 1
    assert "could not import anime_pipeline" in run.stderr and "a requirement is missing" in run.stderr
