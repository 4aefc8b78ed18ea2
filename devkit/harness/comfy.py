"""Real-ComfyUI test harness: find a ComfyUI (the driver's own finder: ``COMFYUI_DIR``/``COMFYUI_PYTHON``
when set, else the managed install of ``python -m driver comfyui install``), start it on CPU with this pack
(and the test-only nodes) installed, stop it by PID, and write tiny test models.

Nothing is written into the ComfyUI tree: every server gets its own ``--base-directory`` (models, input,
output, temp, custom_nodes) and an in-memory database.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from driver.comfy import finder
from driver.comfy.client import ComfyClient
from driver.comfy.finder import ComfyInstall
from driver.comfy.local import child_env, free_port
from driver.errors import ComfyUINotInstalled, DriverError

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


@dataclass
class ServerHandle:
    """A running ComfyUI subprocess with its own base directory."""

    install: ComfyInstall
    base_dir: Path
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    input_dir = property(lambda self: self.base_dir / "input")
    output_dir = property(lambda self: self.base_dir / "output")
    models_dir = property(lambda self: self.base_dir / "models")

    def client(self) -> ComfyClient:
        return ComfyClient(self.url)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Kill abruptly (a server dying mid-job)."""
        if self.proc.poll() is None:
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
                 with_test_nodes: bool = True, extra_args: tuple[str, ...] = (), timeout: float = 120.0) -> ServerHandle:
    """Start ComfyUI on CPU for ``base_dir`` and wait until it answers with this pack loaded."""
    if install is None:
        install, reason = find_comfyui()
        if install is None:
            raise RuntimeError(reason)
    prepare_base_dir(base_dir, with_test_nodes=with_test_nodes)
    port = port or free_port()
    log_path = base_dir / f"comfyui-{port}.log"
    cmd = [str(install.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", str(base_dir), "--database-url", "sqlite:///:memory:",
           "--disable-api-nodes", "--disable-auto-launch", *extra_args]
    env = child_env()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=install.root, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    handle = ServerHandle(install, base_dir, port, proc, log_path)
    deadline = time.monotonic() + timeout
    client = handle.client()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with code {proc.returncode} during startup:\n{handle.log_tail()}")
        try:
            client.system_stats()
            break
        except DriverError:
            if time.monotonic() > deadline:
                handle.kill()
                raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{handle.log_tail()}")
            time.sleep(0.3)
    log_text = log_path.read_text(errors="replace")
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
