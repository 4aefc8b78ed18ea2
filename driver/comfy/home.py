"""The managed ComfyUI's home: where installs live, the install record, the install lock.

Layout (``<home>`` is ``$AP_COMFYUI_HOME``, else ``$XDG_DATA_HOME/anime_pipeline/comfyui``, else
``~/.local/share/anime_pipeline/comfyui``)::

    <home>/.install.lock                 held by the one install running (pid, host, start time inside)
    <home>/<version>/current -> builds/<id>   switched atomically when a build is complete
    <home>/<version>/builds/<id>/ComfyUI/     the ComfyUI tree (pack linked into custom_nodes/)
    <home>/<version>/builds/<id>/venv/        its own Python
    <home>/<version>/builds/<id>/install.json the install record, written last
    <home>/<version>/builds/<id>/install.log  pip's output

A build is never moved (a venv does not survive a move), so switching installs is one symlink replace and an
existing install is never half-overwritten. A build without ``install.json`` is not an install."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, DiskFull, NotWritable

log = logging.getLogger(__name__)

RECORD = "install.json"
RECORD_VERSION = 1


def default_home() -> Path:
    if os.environ.get("AP_COMFYUI_HOME"):
        return Path(os.environ["AP_COMFYUI_HOME"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "anime_pipeline" / "comfyui"


@dataclass(frozen=True)
class InstallRecord:
    """What an install is made of; written last, so its presence means the install completed."""

    comfyui_version: str
    comfyui_commit: str | None
    source: str
    python: str  # the venv's interpreter
    python_version: str
    torch: str
    torch_spec: str  # what was asked for ('' = pip's own resolution)
    cuda: bool  # torch.cuda.is_available() at install time
    pack_requirements_sha256: str
    installed_at: str
    python_base: str | None = None  # the interpreter the venv was made from (--python)
    source_id: str | None = None  # Source.identity(): an archive's sha256, else the source itself
    record_version: int = RECORD_VERSION

    def replace(self, **changes) -> InstallRecord:
        return dataclasses.replace(self, **changes)

    @classmethod
    def read(cls, build: Path) -> InstallRecord | None:
        try:
            data = json.loads((build / RECORD).read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError):
            return None

    def write(self, build: Path) -> None:
        tmp = build / f".{RECORD}.{os.getpid()}.part"
        with guard_write(build):
            tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
            os.replace(tmp, build / RECORD)


@dataclass(frozen=True)
class Build:
    """One complete install: ``root`` is the ComfyUI tree, ``python`` its interpreter."""

    path: Path
    record: InstallRecord

    @property
    def root(self) -> Path:
        return self.path / "ComfyUI"

    @property
    def python(self) -> Path:
        return Path(self.record.python)


class Home:
    def __init__(self, path: Path | None = None):
        self.path = Path(path).expanduser().resolve() if path else default_home().resolve()

    def version_dir(self, version: str) -> Path:
        return self.path / version

    def current(self, version: str) -> Build | None:
        """The complete install of ``version``, or None (nothing installed, or a build without its record)."""
        link = self.version_dir(version) / "current"
        if not link.is_dir():
            return None
        build = link.resolve()
        record = InstallRecord.read(build)
        return Build(build, record) if record else None

    def installed(self) -> list[Build]:
        """Every complete install under this home (one per version)."""
        if not self.path.is_dir():
            return []
        builds = (self.current(d.name) for d in sorted(self.path.iterdir())
                  if d.is_dir() and not d.name.startswith("."))
        return [b for b in builds if b]

    def new_build_dir(self, version: str) -> Path:
        builds = self.version_dir(version) / "builds"
        with guard_write(self.path):
            builds.mkdir(parents=True, exist_ok=True)
            path = builds / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            path.mkdir()
        return path

    def switch(self, version: str, build: Path) -> None:
        """Point ``<version>/current`` at ``build`` (one atomic rename), then remove the other builds."""
        vdir = self.version_dir(version)
        tmp = vdir / f".current.{os.getpid()}"
        with guard_write(vdir):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(build.relative_to(vdir), target_is_directory=True)
            os.replace(tmp, vdir / "current")
        self.prune(version, keep=build)

    def prune(self, version: str, keep: Path | None = None) -> None:
        """Remove the builds of ``version`` other than ``keep`` (failed or replaced ones)."""
        builds = self.version_dir(version) / "builds"
        for b in sorted(builds.iterdir()) if builds.is_dir() else []:
            if keep is None or b.resolve() != keep.resolve():
                shutil.rmtree(b, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, on_wait=None) -> Iterator[None]:
        """One install at a time per home: an advisory lock (released by the kernel if its holder dies). A second
        caller waits; ``on_wait(holder)`` is told who holds it first."""
        with guard_write(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".install.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait:
                    on_wait(os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another install")
                fcntl.flock(fd, fcntl.LOCK_EX)
            holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the lock


@contextlib.contextmanager
def guard_write(where: Path) -> Iterator[None]:
    """Turn a full disk or an unwritable folder into the driver's typed errors, naming ``where``."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            raise DiskFull(f"no space left on the device while writing under {where}: free some space and "
                           "run the same command again") from exc
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise NotWritable(f"{where} is not writable ({exc.strerror}): choose another place with --home or "
                              "AP_COMFYUI_HOME") from exc
        if exc.errno == errno.ENOTDIR:
            raise ConfigError(f"{where}: a file stands where a folder is needed ({exc})") from exc
        raise
