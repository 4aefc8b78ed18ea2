"""Where the managed install takes ComfyUI from: the official repository by ``git clone`` (default), or
``--source``: a local tarball (``.tar.gz``/``.tgz``/``.tar``/``.zip``), a local folder, or a git URL with an
optional ``@ref``. The tree is laid into a fresh folder and checked to be a ComfyUI (``main.py`` and
``comfyui_version.py``) before anything else happens."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InstallSourceError
from . import COMFYUI_REPO, COMFYUI_VERSION
from .home import guard_write

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")
_NETWORK_HINTS = ("could not resolve host", "failed to connect", "unable to access", "network is unreachable",
                  "connection timed out", "couldn't connect", "temporary failure in name resolution")


@dataclass(frozen=True)
class Source:
    kind: str  # "git" | "archive" | "folder"
    location: str
    ref: str | None = None

    def __str__(self) -> str:
        return f"{self.location}@{self.ref}" if self.ref and self.kind == "git" else self.location

    def identity(self) -> str:
        """What makes two sources the same: an archive's content (so the same tarball at another path is the
        same source), a folder's path, a git URL and ref."""
        if self.kind == "archive":
            import hashlib

            digest = hashlib.sha256()
            with open(self.location, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        return str(self)


def parse_source(text: str | None, version: str = COMFYUI_VERSION) -> Source:
    """``None`` is the official repository at ``v<version>``; a local path is an archive or a folder; anything
    else is a git URL, ``@ref`` selecting a tag, branch or commit."""
    if not text:
        return Source("git", COMFYUI_REPO, f"v{version}")
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            return Source("folder", str(path.resolve()))
        if path.name.endswith(ARCHIVES):
            return Source("archive", str(path.resolve()))
        raise InstallSourceError(f"--source {text}: a file that is not an archive ({', '.join(ARCHIVES)})",
                                 code="source_invalid")
    m = re.fullmatch(r"(?P<url>.+?)(?:@(?P<ref>[\w./-]+))?", text)
    url, ref = (m["url"], m["ref"]) if m else (text, None)
    if url.startswith(("https://", "http://", "git@", "ssh://", "file://")) or url.endswith(".git"):
        return Source("git", url, ref)
    raise InstallSourceError(f"--source {text}: no such file or folder, and not a git URL", code="source_invalid")


def fetch(source: Source, dest: Path) -> None:
    """Lay the ComfyUI tree of ``source`` at ``dest`` (which must not exist) and check it is one."""
    with guard_write(dest.parent):
        if source.kind == "git":
            _clone(source, dest)
        elif source.kind == "folder":
            shutil.copytree(source.location, dest, symlinks=True,
                            ignore=shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__"))
        else:
            _extract(Path(source.location), dest)
    check_tree(dest, source)


def check_tree(root: Path, source: Source | str) -> str:
    """The ComfyUI version of the tree at ``root``; an error naming the source when it is not a ComfyUI."""
    if not (root / "main.py").is_file() or not (root / "comfyui_version.py").is_file():
        raise InstallSourceError(f"--source {source}: not a ComfyUI (no main.py and comfyui_version.py at its top)",
                                 code="source_invalid")
    return read_version(root)


def read_version(root: Path) -> str:
    text = (root / "comfyui_version.py").read_text(errors="replace")
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", text)
    return m[1] if m else "unknown"


def git_commit(root: Path) -> str | None:
    """The commit of a cloned tree (None for archives and folders without .git)."""
    if not (root / ".git").exists() or not shutil.which("git"):
        return None
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _clone(source: Source, dest: Path) -> None:
    if not shutil.which("git"):
        raise InstallSourceError("git is not installed: install git, or pass --source with a ComfyUI tarball or "
                                 "folder (offline install)", code="git_missing")
    cmd = ["git", "clone", "--quiet", "--depth", "1"]
    if source.ref:
        cmd += ["--branch", source.ref]
    done = subprocess.run([*cmd, source.location, str(dest)], capture_output=True, text=True)
    if done.returncode == 0:
        return
    if source.ref and "not found in upstream" in done.stderr:  # a commit, not a tag or branch: full clone
        shutil.rmtree(dest, ignore_errors=True)
        done = subprocess.run(["git", "clone", "--quiet", source.location, str(dest)], capture_output=True, text=True)
        if done.returncode == 0:
            done = subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", source.ref],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                return
    err = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    offline = any(h in done.stderr.lower() for h in _NETWORK_HINTS)
    hint = (" (no network? install offline with --source PATH to a ComfyUI tarball or folder)" if offline
            else "; check the URL and the @ref, or pass --source PATH to a ComfyUI tarball or folder")
    raise InstallSourceError(f"--source {source}: git clone failed: {err}{hint}",
                             code="source_unreachable" if offline else "source_invalid")


def _extract(archive: Path, dest: Path) -> None:
    """Unpack into ``dest``; an archive holding one top folder (as GitHub's do) is unpacked from inside it."""
    tmp = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                if hasattr(tarfile, "data_filter"):  # 3.10.12+ / 3.11.4+: refuse links out of the tree
                    t.extractall(tmp, filter="data")
                else:
                    t.extractall(tmp)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InstallSourceError(f"--source {archive}: cannot be unpacked ({exc})", code="source_invalid") from exc
    entries = list(tmp.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    top.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
