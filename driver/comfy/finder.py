"""Which ComfyUI to start: one answer for the driver, the test harness and ``.ci/run``.

In order: ``--comfyui DIR``; else ``COMFYUI_DIR`` (with ``COMFYUI_PYTHON``) when set; else the config's
``local_comfyui`` (``managed``, the default; a path to the user's own checkout; ``none``); else the managed install
(``python -m driver comfyui install``). A variable or option that is set but wrong is an error naming it, never
skipped. Nothing here is consulted when a ``--server`` answers."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ComfyUINotInstalled, ConfigError
from . import COMFYUI_VERSION
from .home import Home
from .source import read_version

INSTALL_HINT = "python -m driver comfyui install"
#: What the driver's own Python must import to run a checkout that has no venv of its own.
_COMFY_IMPORTS = ("torch", "torchvision", "aiohttp", "tqdm", "yaml", "safetensors")


@dataclass(frozen=True)
class ComfyInstall:
    """A ComfyUI tree and the Python that runs it. ``cuda`` is known for managed installs (recorded at install
    time); None elsewhere."""

    root: Path
    python: Path
    origin: str  # where it was found: "--comfyui", "COMFYUI_DIR", "local_comfyui", "managed"
    cuda: bool | None = None

    @property
    def version(self) -> str:
        return read_version(self.root)


def find_comfyui(comfyui_dir: Path | None = None, local_comfyui: str | None = "managed",
                 home: Path | None = None) -> ComfyInstall | None:
    """The ComfyUI to start, or None when the config says ``local_comfyui: none``."""
    if comfyui_dir is not None:
        return _checkout(Path(comfyui_dir), "--comfyui")
    if os.environ.get("COMFYUI_DIR"):
        return _checkout(Path(os.environ["COMFYUI_DIR"]), "COMFYUI_DIR")
    choice = (local_comfyui or "managed").strip()
    if choice.lower() == "none":
        return None
    if choice.lower() != "managed":
        return _checkout(Path(choice), "local_comfyui")
    return managed(home)


def managed(home: Path | None = None) -> ComfyInstall:
    h = Home(home)
    build = h.current(COMFYUI_VERSION) or next(iter(reversed(h.installed())), None)
    if build is None:
        raise ComfyUINotInstalled(f"no managed ComfyUI in {h.path}: install it with `{INSTALL_HINT}` "
                                  "(offline: add --source PATH_TO_ComfyUI.tar.gz), "
                                  "or pass --server URL / --comfyui DIR")
    if not build.python.is_file():
        raise ComfyUINotInstalled(f"the managed ComfyUI in {build.path} lost its Python ({build.python}): "
                                  f"reinstall with `{INSTALL_HINT} --force`")
    return ComfyInstall(build.root, build.python, "managed", build.record.cuda)


def _checkout(root: Path, origin: str) -> ComfyInstall:
    root = root.expanduser()
    if not (root / "main.py").is_file():
        raise ConfigError(f"{origin}={root}: not a ComfyUI checkout (no main.py there)")
    return ComfyInstall(root.resolve(), _python_for(root, origin), origin)


def _python_for(root: Path, origin: str) -> Path:
    env = os.environ.get("COMFYUI_PYTHON")
    if env:
        python = Path(env).expanduser()
        if not python.is_file():
            raise ConfigError(f"COMFYUI_PYTHON={env}: no such Python")
        return python
    for candidate in (root / ".venv" / "bin" / "python", root / "venv" / "bin" / "python"):
        if candidate.exists():
            return candidate
    missing = [m for m in _COMFY_IMPORTS if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{origin}={root}: no venv in it (.venv/ or venv/) and the driver's Python lacks "
                          f"{', '.join(missing)}: set COMFYUI_PYTHON to the Python that runs this ComfyUI, or use "
                          f"the managed install (`{INSTALL_HINT}`)")
    return Path(sys.executable)
