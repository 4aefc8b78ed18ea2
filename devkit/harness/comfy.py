"""Real-ComfyUI test harness: find a ComfyUI (the driver's own finder: ``COMFYUI_DIR``/``COMFYUI_PYTHON``
when set, else the managed install of ``python -m driver comfyui install``), start it on CPU with this pack
(and the test-only nodes) installed, through the driver's own :class:`~driver.comfy.local.LocalComfy`, and
write tiny test models.

Nothing is written into the ComfyUI tree: every server gets its own ``--base-directory`` (models, input,
output, temp, custom_nodes) and an in-memory database.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from driver.comfy import finder
from driver.comfy.client import ComfyClient
from driver.comfy.finder import ComfyInstall
from driver.comfy.local import LocalComfy, free_port  # noqa: F401 - free_port: for the tests
from driver.errors import ComfyUIBroken, ComfyUINotInstalled, DriverError

REPO = Path(__file__).resolve().parents[2]
PACK_DIR = REPO / "custom_nodes" / "anime_pipeline"
TEST_NODES_DIR = REPO / "devkit" / "comfy_test_nodes" / "ap_test_nodes"
CACHE_DIR = Path(os.environ.get("AP_TEST_CACHE", Path.home() / ".cache" / "anime_pipeline_tests"))


class ComfyMisconfigured(Exception):
    """COMFYUI_DIR / COMFYUI_PYTHON set but wrong: the integration tests fail (never skip) with this reason."""


def find_comfyui() -> tuple[ComfyInstall | None, str]:
    """The ComfyUI to test against, or None and the reason why not (nothing installed). A variable that is set
    but wrong raises :class:`ComfyMisconfigured`."""
    try:
        return finder.find_comfyui(), ""
    except ComfyUINotInstalled as exc:
        return None, str(exc)
    except DriverError as exc:
        raise ComfyMisconfigured(str(exc)) from exc


class ServerHandle(LocalComfy):
    """A test ComfyUI: the driver's :class:`~driver.comfy.local.LocalComfy` (own base directory, in-memory
    database, only ComfyUI's environment, stopped with the test process) on the CPU, with the test's helpers."""

    input_dir = property(lambda self: self.base_dir / "input")
    output_dir = property(lambda self: self.base_dir / "output")
    models_dir = property(lambda self: self.base_dir / "models")

    def client(self) -> ComfyClient:
        return ComfyClient(self.url)

    def log_tail(self, n: int = 60) -> str:
        return super().log_tail(n)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        super().stop(timeout)

    def kill(self) -> None:
        """Kill abruptly (a server dying mid-job)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def prepare_base_dir(base_dir: Path, *, with_test_nodes: bool = True) -> Path:
    """Create a ComfyUI base directory with this pack (and the test nodes) linked in."""
    custom = base_dir / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    links = {"anime_pipeline": PACK_DIR}
    if with_test_nodes:
        links["ap_test_nodes"] = TEST_NODES_DIR
    for name, target in links.items():
        link = custom / name
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    for sub in ("input", "output", "models"):
        (base_dir / sub).mkdir(exist_ok=True)
    return base_dir


def start_server(base_dir: Path, *, install: ComfyInstall | None = None, port: int | None = None,
                 with_test_nodes: bool = True, extra_args: tuple[str, ...] = (), timeout: float = 120.0
                 ) -> ServerHandle:
    """Start ComfyUI on CPU for ``base_dir`` and wait until it answers with this pack loaded."""
    if install is None:
        install, reason = find_comfyui()
        if install is None:
            raise RuntimeError(reason)
    prepare_base_dir(base_dir, with_test_nodes=with_test_nodes)
    handle = ServerHandle(install, base_dir, start_timeout=timeout, extra_args=("--disable-api-nodes", *extra_args),
                          port=port, force_cpu=True, models=base_dir / "models")
    try:
        handle.start()
    except ComfyUIBroken as exc:
        raise RuntimeError(str(exc)) from None
    log_text = handle.log_path.read_text(errors="replace")
    if "IMPORT FAILED" in log_text and str(PACK_DIR.name) in log_text.split("IMPORT FAILED", 1)[1].splitlines()[0]:
        handle.stop()
        raise RuntimeError(f"the anime_pipeline pack failed to import in ComfyUI:\n{handle.log_tail(80)}")
    return handle


def tiny_models(install: ComfyInstall) -> Path:
    """Tiny WAN 2.2 DiTs + random WAN 2.1 VAE, written once per recipe and ComfyUI version."""
    from devkit.harness import make_tiny_models as recipe

    key = hashlib.sha256(f"{recipe.RECIPE_VERSION}:{install.version}".encode()).hexdigest()[:12]
    out = CACHE_DIR / f"tiny_models_{key}"
    names = ("tiny_wan22_i2v_high.safetensors", "tiny_wan22_i2v_low.safetensors", "tiny_wan21_vae.safetensors")
    if not all((out / n).is_file() for n in names):
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        done = subprocess.run([str(install.python), str(Path(recipe.__file__)), str(tmp)], cwd=install.root,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            raise RuntimeError(f"writing the tiny test models failed:\n{done.stdout[-3000:]}")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def link_model(models_dir: Path, folder: str, source: Path, name: str | None = None) -> str:
    """Make ``source`` visible to ComfyUI as ``models/<folder>/<name>``; returns the name."""
    name = name or source.name
    dest = models_dir / folder / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(source)
    return name
