"""``python -m driver comfyui install``: a pinned ComfyUI in the managed home, its own venv, the pack linked.

Steps, each reported: source -> venv -> torch -> requirements -> pack -> smoke test -> record -> switch. A build
is made in a new folder and becomes the install only when complete (the record is written last, then
``current`` switches), so a failed or interrupted install never replaces a good one. The same call again
changes nothing (it reads the record and hashes one file); a changed pack ``requirements.txt`` reinstalls
those alone."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ComfyUIBroken
from . import COMFYUI_VERSION, PACK_DIR, packages
from .gpu import gpu_present
from .home import Build, Home, InstallRecord, guard_write
from .source import Source, fetch, git_commit, parse_source, read_version

log = logging.getLogger(__name__)

PACK_REQUIREMENTS = PACK_DIR / "requirements.txt"
EXAMPLE_INPUTS = PACK_DIR / "example_inputs"
#: Folders of a build that hold the user's own files: carried into the next build when one replaces it.
USER_FOLDERS = ("input", "output", "user", "models")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InstallOptions:
    source: str | None = None
    home: Path | None = None
    python: str | None = None
    torch: str | None = None
    force: bool = False
    version: str = COMFYUI_VERSION


@dataclass(frozen=True)
class InstallResult:
    build: Build
    changed: str  # "installed" | "requirements" | "unchanged"
    seconds: float


def install(opts: InstallOptions, progress: Progress = log.info) -> InstallResult:
    t0 = time.monotonic()
    home = Home(opts.home)
    source = parse_source(opts.source, opts.version)
    with home.lock(on_wait=lambda holder: progress(f"waiting for the install already running in {home.path} "
                                                   f"({holder})")):
        current = home.current(opts.version)
        if current and not opts.force and _same_request(current.record, opts, source):
            build, changed = _refresh(current, progress)
            return InstallResult(build, changed, time.monotonic() - t0)
        build = _build(home, opts, source, progress)
    progress(f"ComfyUI {build.record.comfyui_version} installed in {build.path} ({time.monotonic() - t0:.0f} s)")
    return InstallResult(build, "installed", time.monotonic() - t0)


def _same_request(record: InstallRecord, opts: InstallOptions, source: Source) -> bool:
    same_source = (record.source_id == source.identity() if record.source_id
                   else record.source == str(source))
    return ((opts.source is None or same_source)
            and (opts.python is None or Path(record.python_base or "") == Path(opts.python))
            and (opts.torch is None or record.torch_spec == opts.torch))


def _refresh(build: Build, progress: Progress) -> tuple[Build, str]:
    """Keep an install current with this checkout: the pack link, the example inputs, the pack's requirements."""
    link_pack(build.root)
    copy_example_inputs(build.root / "input")
    digest = packages.sha256_file(PACK_REQUIREMENTS)
    if digest == build.record.pack_requirements_sha256:
        progress(f"ComfyUI {build.record.comfyui_version} is installed and up to date ({build.path})")
        return build, "unchanged"
    progress("the pack's requirements.txt changed: installing it")
    pip = packages.Pip(build.python, build.path / "install.log")
    packages.install_pack_requirements(pip, PACK_REQUIREMENTS)
    record = build.record.replace(pack_requirements_sha256=digest)
    record.write(build.path)
    return Build(build.path, record), "requirements"


def _build(home: Home, opts: InstallOptions, source: Source, progress: Progress) -> Build:
    python = opts.python or packages.default_python()
    version = packages.python_version(python)  # before anything is written
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=_mkdir(home.path)))
    try:
        progress(f"[1/6] fetching ComfyUI from {source}")
        fetch(source, staging / "ComfyUI")
        comfy_version = read_version(staging / "ComfyUI")
        if comfy_version != opts.version:
            log.warning("--source holds ComfyUI %s; the pack is tested against %s", comfy_version, opts.version)
        path = home.new_build_dir(comfy_version)
        with guard_write(path):
            (staging / "ComfyUI").rename(path / "ComfyUI")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        record = _populate(path, opts, source, python, version, progress)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # a failed build is never left to be taken for an install
        raise
    previous = home.current(record.comfyui_version)
    if previous:
        carry_user_folders(previous.root, path / "ComfyUI")
    home.switch(record.comfyui_version, path)
    return Build(path, record)


def _populate(path: Path, opts: InstallOptions, source: Source, python: str, version, progress: Progress
              ) -> InstallRecord:
    root, log_path = path / "ComfyUI", path / "install.log"
    with guard_write(path):
        progress(f"[2/6] creating a venv with Python {'.'.join(map(str, version))} ({python})")
        venv_python = packages.make_venv(python, path / "venv", log_path)
        pip = packages.Pip(venv_python, log_path)
        gpu = gpu_present()
        progress(f"[3/6] installing torch ({opts.torch or ('CPU build' if not gpu else 'pip default')}; "
                 f"log: {log_path})")
        packages.install_torch(pip, opts.torch, gpu)
        torch_info = packages.check_torch(venv_python)
        progress(f"[4/6] installing ComfyUI's and the pack's requirements (torch {torch_info['torch']} pinned)")
        packages.install_requirements(pip, root, PACK_REQUIREMENTS)
        progress("[5/6] linking the pack and its example inputs")
        link_pack(root)
        copy_example_inputs(root / "input")
        progress("[6/6] starting ComfyUI once to check that it and the pack load")
        smoke_test(root, venv_python, log_path)
    record = InstallRecord(
        comfyui_version=read_version(root), comfyui_commit=git_commit(root), source=str(source),
        source_id=source.identity(),
        python=str(venv_python), python_base=str(python), python_version=".".join(map(str, version)),
        torch=torch_info["torch"], torch_spec=opts.torch or "", cuda=torch_info["cuda"],
        pack_requirements_sha256=packages.sha256_file(PACK_REQUIREMENTS),
        installed_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    record.write(path)
    return record


def _mkdir(path: Path) -> Path:
    with guard_write(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def link_pack(root: Path) -> None:
    link = root / "custom_nodes" / "anime_pipeline"
    if link.is_symlink() and link.resolve() == PACK_DIR:
        return
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(PACK_DIR, target_is_directory=True)


def copy_example_inputs(input_dir: Path) -> list[Path]:
    """The pack's example inputs into ComfyUI's ``input/`` (a file the user changed there is left alone)."""
    input_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in sorted(EXAMPLE_INPUTS.glob("*")) if EXAMPLE_INPUTS.is_dir() else []:
        dest = input_dir / src.name
        if src.is_file() and not dest.exists():
            shutil.copy2(src, dest)
            copied.append(dest)
    return copied


def carry_user_folders(old_root: Path, new_root: Path) -> None:
    """Move the user's inputs, outputs, settings and models from the replaced build into the new one."""
    for name in USER_FOLDERS:
        old, new = old_root / name, new_root / name
        if old.is_dir() and not old.is_symlink():
            if new.exists():
                shutil.rmtree(new) if new.is_dir() else new.unlink()
            old.rename(new)


def smoke_test(root: Path, python: Path, log_path: Path) -> None:
    """``main.py --quick-test-for-ci`` with the pack: ComfyUI imports, loads the pack, and exits."""
    with tempfile.TemporaryDirectory(prefix="ap-smoke-") as base:
        (Path(base) / "custom_nodes").mkdir()
        (Path(base) / "custom_nodes" / "anime_pipeline").symlink_to(PACK_DIR, target_is_directory=True)
        cmd = [str(python), "main.py", "--quick-test-for-ci", "--cpu", "--base-directory", base,
               "--database-url", "sqlite:///:memory:", "--disable-auto-launch"]
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = done.stdout + done.stderr
    with log_path.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n{out}")
    failed = [ln for ln in out.splitlines() if "IMPORT FAILED" in ln and "anime_pipeline" in ln]
    if done.returncode or failed:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise ComfyUIBroken(f"the new ComfyUI does not start with the pack (exit {done.returncode}); nothing was "
                            f"marked installed. Last lines:\n{tail}")
