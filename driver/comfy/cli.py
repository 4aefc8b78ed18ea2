"""``python -m driver comfyui install|status|start|uninstall|where``: the managed ComfyUI from the command line.

    install [--source SRC] [--home DIR] [--python PY] [--torch SPEC] [--force]
    status [--home DIR] [--json]        what is installed, checked by a real start (every AP_* node asked for)
    start [--port N] [--listen ADDR] [--models DIR] [--cpu] [--home DIR]   ComfyUI in the foreground, for an artist
    uninstall [--home DIR]              remove the managed install (nothing outside the home is touched)
    where [--home DIR]                  the ComfyUI the driver would start: folder, Python, origin (one a line)"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ComfyUIBroken, ComfyUINotInstalled
from . import COMFYUI_VERSION
from .client import ComfyClient
from .finder import INSTALL_HINT, ComfyInstall, find_comfyui, managed
from .home import Home, guard_write
from .install import InstallOptions, install
from .local import LocalComfy


def add_command(sub, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("comfyui", parents=[common], help="install, check, start or remove the managed ComfyUI")
    csub = c.add_subparsers(dest="comfyui_command", required=True)
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", type=Path, help="managed home (default: $AP_COMFYUI_HOME or "
                                                "~/.local/share/anime_pipeline/comfyui)")
    i = csub.add_parser("install", parents=[common, home], help=f"install ComfyUI {COMFYUI_VERSION} with the pack")
    i.add_argument("--source", help="local tarball, folder, or git URL[@ref] (default: the official repository; "
                                    "offline: a ComfyUI tarball)")
    i.add_argument("--python", help="Python to make ComfyUI's venv with (3.10-3.13; default: the driver's)")
    i.add_argument("--torch", metavar="SPEC", help="torch requirement(s), e.g. 'torch==2.9.1 torchvision==0.24.1' "
                                                   "(default: a CPU build where no GPU is found)")
    i.add_argument("--force", action="store_true", help="install anew even if an install is up to date")
    s = csub.add_parser("status", parents=[common, home], help="what is installed; start it once and check the pack")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    st = csub.add_parser("start", parents=[common, home], help="run the managed ComfyUI in the foreground")
    st.add_argument("--port", type=int, default=8188)
    st.add_argument("--listen", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    st.add_argument("--models", type=Path, help="a models folder to use (checkpoints/, loras/, ...)")
    st.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is found")
    csub.add_parser("uninstall", parents=[common, home], help="remove the managed ComfyUI")
    csub.add_parser("where", parents=[common, home], help="print the ComfyUI folder and Python the driver would use")


def main(args: argparse.Namespace) -> int:
    return {"install": _install, "status": _status, "start": _start, "uninstall": _uninstall,
            "where": _where}[args.comfyui_command](args)


@contextlib.contextmanager
def progress_lines(plain: bool = False) -> Iterator:
    """A spinner with the current step on a terminal; plain lines otherwise."""
    if plain or not sys.stderr.isatty():
        yield lambda msg: print(msg, file=sys.stderr, flush=True)
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("") as status:
        def say(msg: str) -> None:
            console.log(msg)
            status.update(msg)
        yield say


def _install(args) -> int:
    opts = InstallOptions(source=args.source, home=args.home, python=args.python, torch=args.torch, force=args.force)
    with progress_lines(args.plain) as say:
        result = install(opts, say)
    print(f"{result.build.root} (python {result.build.python}) {result.changed} in {result.seconds:.1f} s")
    return 0


def check_nodes(install: ComfyInstall, *, force_cpu: bool = False) -> dict:
    """Start ``install`` on a free loopback port, ask ``/object_info`` for every AP_* node, stop it."""
    from anime_pipeline import NODE_CLASS_MAPPINGS

    with tempfile.TemporaryDirectory(prefix="ap-status-") as base:
        local = LocalComfy(install, Path(base), force_cpu=force_cpu)
        with local:
            info = ComfyClient(local.url).object_info()
        missing = sorted(n for n in NODE_CLASS_MAPPINGS if n not in info)
        if missing:
            raise ComfyUIBroken(f"{install.root} starts but lacks {len(missing)} anime_pipeline node(s): "
                                f"{', '.join(missing)}; last lines of its log:\n{local.log_tail()}")
    return {"nodes": len(NODE_CLASS_MAPPINGS), "version": install.version, "cpu": local.cpu}


def _status(args) -> int:
    home = Home(args.home)
    builds = home.installed()
    out: dict = {"home": str(home.path), "installed": [{"path": str(b.path), **b.record.__dict__} for b in builds]}
    try:
        chosen = find_comfyui(home=args.home)
    except ComfyUINotInstalled as exc:
        print(json.dumps(out, indent=1) if args.json else f"{home.path}: nothing installed ({exc})")
        raise
    assert chosen is not None
    out["driver_uses"] = {"root": str(chosen.root), "python": str(chosen.python), "origin": chosen.origin}
    out["check"] = check_nodes(chosen)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for b in builds:
        r = b.record
        print(f"ComfyUI {r.comfyui_version} ({r.comfyui_commit or r.source}) in {b.root}\n"
              f"  Python {r.python_version}, torch {r.torch} ({'CUDA' if r.cuda else 'CPU'}), "
              f"installed {r.installed_at}")
    print(f"the driver uses {chosen.root} ({chosen.origin}); started on the "
          f"{'CPU' if out['check']['cpu'] else 'GPU'}: all {out['check']['nodes']} anime_pipeline nodes loaded")
    return 0


def _start(args) -> int:
    install_ = managed(args.home)
    local = LocalComfy(install_, install_.root, port=args.port, listen=args.listen, force_cpu=args.cpu,
                       models=args.models, with_pack=True)
    print(f"ComfyUI {install_.version} at http://{args.listen}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    local.proc = local.popen()
    try:
        return local.proc.wait()
    finally:
        local.stop()


def _uninstall(args) -> int:
    home = Home(args.home)
    vdir = home.version_dir(COMFYUI_VERSION)
    if not vdir.exists():
        print(f"nothing to remove: no managed ComfyUI {COMFYUI_VERSION} in {home.path}")
        return 0
    with home.lock(on_wait=lambda holder: print(f"waiting for the install running ({holder})", file=sys.stderr)):
        with guard_write(vdir):
            shutil.rmtree(vdir)
    print(f"removed {vdir}")
    return 0


def _where(args) -> int:
    chosen = find_comfyui(home=args.home)
    if chosen is None:
        raise ComfyUINotInstalled(f"the config says local_comfyui: none; install one with `{INSTALL_HINT}`")
    print(f"{chosen.root}\n{chosen.python}\n{chosen.origin}")
    return 0
