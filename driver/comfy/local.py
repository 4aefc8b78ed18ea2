"""A local ComfyUI started by the driver: for one run (when no server answers), for ``comfyui status`` (a real
start on a free port) and for an artist (``comfyui start``).

* The pack is linked into its own ``--base-directory`` (for a run: inside the run folder), models are read
  through an extra-model-paths file, the database is in memory: nothing is written into the ComfyUI tree.
* It runs with the install's own Python and with ``--cpu`` where no GPU is usable.
* It gets only the environment ComfyUI needs (``PATH``, locale, caches, GPU selection...): no API keys.
* It is stopped on every exit path of the driver: normal end, exception, Ctrl-C while it starts, SIGTERM or
  SIGHUP (the CLI turns them into :class:`Terminated`), and SIGKILL (Linux: a parent-death signal).
* Every start has its own log, ``logs/comfyui-<time>-<port>.log`` under the base directory."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..errors import ComfyUIBroken, DriverError
from . import PACK_DIR
from .client import ComfyClient
from .finder import ComfyInstall
from .gpu import gpu_present

log = logging.getLogger(__name__)

MODEL_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "clip", "diffusion_models", "unet", "clip_vision",
                 "upscale_models", "embeddings", "controlnet", "style_models", "insightface", "interpolation")
#: Environment variables passed to ComfyUI (exact names, and prefixes ending in ``_``); nothing else is.
ENV_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
             "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "XDG_CACHE_HOME",
             "XDG_DATA_HOME", "XDG_CONFIG_HOME", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
             "OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "NUMEXPR_MAX_THREADS")
ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HIP_", "ROCR_", "HSA_", "PYTORCH_", "TORCH_", "MKL_", "KMP_")
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """What a ComfyUI child may see of the driver's environment (no secrets such as ``RUNPOD_API_KEY``)."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the driver dies, even by SIGKILL (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def on_this_machine(url: str) -> bool:
    """Whether the server at ``url`` (``http://host:port`` or ``host:port``) is a loopback address."""
    return is_loopback(urlsplit(url if "//" in url else f"//{url}").hostname or "")


class LocalComfy:
    """One ComfyUI subprocess. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, install: ComfyInstall, base_dir: Path, *, start_timeout: float = 180.0,
                 extra_args: tuple[str, ...] = (), port: int | None = None, listen: str = "127.0.0.1",
                 force_cpu: bool = False, models: Path | None = None, with_pack: bool = True):
        self.install = install
        self.root = install.root
        self.base_dir = Path(base_dir)
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.cpu = force_cpu or install.cuda is False or (install.cuda is None and not gpu_present())
        self.models = Path(models).expanduser().resolve() if models else self.root / "models"
        self.with_pack = with_pack
        self.proc: subprocess.Popen | None = None
        self.port = port or free_port()
        self.listen = listen
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base_dir / "logs" / f"comfyui-{time.strftime('%Y%m%d-%H%M%S')}-{self.port}.log"

    def _prepare(self) -> Path:
        custom = self.base_dir / "custom_nodes"
        custom.mkdir(parents=True, exist_ok=True)
        link = custom / "anime_pipeline"
        if self.with_pack and not link.exists():
            link.symlink_to(PACK_DIR, target_is_directory=True)
        paths = {"base_path": str(self.models.parent if self.models.name == "models" else self.models)}
        prefix = "models/" if self.models.name == "models" else ""
        paths.update({f: f"{prefix}{f}" for f in MODEL_FOLDERS})
        config = self.base_dir / "extra_model_paths.yaml"
        config.write_text(yaml.safe_dump({"anime_pipeline_models": paths}, sort_keys=False))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return config

    def command(self) -> list[str]:
        config = self._prepare()
        cmd = [str(self.install.python), "main.py", "--listen", self.listen, "--port", str(self.port),
               "--base-directory", str(self.base_dir.resolve()), "--database-url", "sqlite:///:memory:",
               "--extra-model-paths-config", str(config.resolve()), "--disable-auto-launch", *self.extra_args]
        if self.cpu and "--cpu" not in cmd:
            cmd.append("--cpu")
        return cmd

    def popen(self, **kw) -> subprocess.Popen:
        """Start the process (own session: a terminal's Ctrl-C reaches the driver, which stops it)."""
        return subprocess.Popen(self.command(), cwd=self.root, env=child_env(), start_new_session=True,
                                preexec_fn=_die_with_parent, **kw)

    def start(self) -> str:
        try:
            self._prepare()
            log.info("starting ComfyUI %s on port %d%s (log: %s)", self.root, self.port,
                     " on the CPU" if self.cpu else "", self.log_path)
            with self.log_path.open("wb") as fh:
                self.proc = self.popen(stdout=fh, stderr=subprocess.STDOUT)
            self._wait_ready()
            return self.url
        except BaseException:  # Ctrl-C or SIGTERM while it starts: never leave it running
            self.stop()
            raise

    def _wait_ready(self) -> None:
        client = ComfyClient(self.url)
        deadline = time.monotonic() + self.start_timeout
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise ComfyUIBroken(f"the local ComfyUI ({self.root}) exited with code {self.proc.returncode} while "
                                    f"starting; last lines of {self.log_path}:\n{self.log_tail()}")
            try:
                client.system_stats()
                return
            except DriverError:
                if time.monotonic() > deadline:
                    raise ComfyUIBroken(f"the local ComfyUI did not answer within {self.start_timeout:.0f} s; "
                                        f"last lines of {self.log_path}:\n{self.log_tail()}") from None
                time.sleep(0.3)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        log.info("stopping the local ComfyUI (pid %d)", self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> LocalComfy:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
