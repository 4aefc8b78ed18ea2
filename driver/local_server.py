"""Start a local ComfyUI for one run (``--comfyui DIR`` / ``COMFYUI_DIR``) when no server
answers: the pack linked in, ``--base-directory`` inside the run folder, database in
memory, models read from the checkout's ``models/`` through an extra-model-paths file.
Nothing is written into the ComfyUI checkout. Stopped by PID when the run ends."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .client import ComfyClient
from .errors import ConfigError, DriverError, ServerUnreachable

log = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parents[1] / "custom_nodes" / "anime_pipeline"
MODEL_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "clip", "diffusion_models", "unet", "clip_vision",
                 "upscale_models", "embeddings", "controlnet", "style_models", "insightface", "interpolation")


def comfyui_python(root: Path) -> Path:
    env = os.environ.get("COMFYUI_PYTHON")
    if env:
        return Path(env).expanduser()
    for candidate in (root / ".venv" / "bin" / "python", root / "venv" / "bin" / "python"):
        if candidate.exists():
            return candidate
    return Path(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalComfy:
    def __init__(self, root: Path, base_dir: Path, *, start_timeout: float = 180.0, extra_args: tuple[str, ...] = ()):
        self.root = Path(root).expanduser().resolve()
        if not (self.root / "main.py").is_file():
            raise ConfigError(f"--comfyui {root}: not a ComfyUI checkout (no main.py there)")
        self.base_dir = Path(base_dir)
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> Path:
        custom = self.base_dir / "custom_nodes"
        custom.mkdir(parents=True, exist_ok=True)
        link = custom / "anime_pipeline"
        if not link.exists():
            link.symlink_to(PACK_DIR, target_is_directory=True)
        paths = {"base_path": str(self.root)}
        paths.update({f: f"models/{f}" for f in MODEL_FOLDERS})
        config = self.base_dir / "extra_model_paths.yaml"
        config.write_text(yaml.safe_dump({"comfyui_checkout": paths}, sort_keys=False))
        return config

    def start(self) -> str:
        config = self._prepare()
        cmd = [str(comfyui_python(self.root)), "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base_dir.resolve()), "--database-url", "sqlite:///:memory:",
               "--extra-model-paths-config", str(config.resolve()), "--disable-auto-launch", *self.extra_args]
        log_path = self.base_dir / "comfyui.log"
        log.info("starting ComfyUI from %s on port %d (log: %s)", self.root, self.port, log_path)
        with log_path.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=fh, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, start_new_session=True)
        client = ComfyClient(self.url)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise ServerUnreachable(f"the local ComfyUI exited with code {self.proc.returncode} while starting:\n"
                                        f"{tail}")
            try:
                client.system_stats()
                return self.url
            except DriverError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerUnreachable(f"the local ComfyUI did not answer within {self.start_timeout:.0f} s "
                                            f"(log: {log_path})") from None
                time.sleep(0.5)

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
