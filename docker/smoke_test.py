"""Build-time smoke test of the farm images (the last RUN of both Dockerfiles). It runs in
the Python the image starts ComfyUI with (``/opt/venv``: worker-comfyui 5.8.5's
``start.sh`` runs ``python``, first on ``PATH``) and fails the build unless:

1. that Python is the expected environment (``--expect-prefix``) and ComfyUI has no venv
   of its own: comfy-cli >= 1.6 creates ``<comfyui>/.venv`` for ``comfy install`` when
   no ``VIRTUAL_ENV`` is set and installs torch and ComfyUI's requirements there, so
   the Python that ``start.sh`` runs would lack them;
2. torch and every package of ComfyUI's ``requirements.txt`` are installed in it, and
   ComfyUI is the pinned version (``--comfyui-version``);
3. ComfyUI starts (``main.py --quick-test-for-ci --cpu``: it loads every node, custom
   ones included, then exits) and lists this pack among its custom nodes without
   "IMPORT FAILED";
4. the pack's nodes import there and register their ``AP_*`` ids.

Also runs against any ComfyUI install, e.g. the development one:
``python docker/smoke_test.py --comfyui DIR --expect-prefix VENV --comfyui-version X
--base-directory BASE`` (BASE holds ``custom_nodes/anime_pipeline``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

PACK = "anime_pipeline"


def check_environment(comfyui: Path, expect_prefix: str | None) -> list[str]:
    problems = []
    if expect_prefix and Path(sys.prefix).resolve() != Path(expect_prefix).resolve():
        problems.append(f"running in {sys.prefix}, not in {expect_prefix} (the Python the image starts ComfyUI with)")
    for venv in (".venv", "venv"):
        if (comfyui / venv).exists():
            problems.append(f"{comfyui / venv} exists: comfy-cli installed ComfyUI's packages into a venv of its own "
                            "(set VIRTUAL_ENV before `comfy install`)")
    return problems


def check_packages(comfyui: Path, version: str | None, allow_missing: list[str]) -> list[str]:
    problems = []
    names = ["torch"]
    for line in (comfyui / "requirements.txt").read_text().splitlines():
        name = re.split(r"[<>=!~;\[\s@]", line.strip(), maxsplit=1)[0]
        if name and not name.startswith(("#", "-")):
            names.append(name)
    for name in (n for n in names if n not in allow_missing):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} (ComfyUI requirement) is not installed in {sys.prefix}")
    sys.path.insert(0, str(comfyui))
    try:
        found = importlib.import_module("comfyui_version").__version__
    except ImportError as exc:
        return problems + [f"no comfyui_version in {comfyui}: {exc}"]
    if version and found != version:
        problems.append(f"ComfyUI {found} is installed, {version} is pinned")
    return problems


def check_startup(comfyui: Path, extra: list[str], timeout: float) -> list[str]:
    cmd = [sys.executable, str(comfyui / "main.py"), "--quick-test-for-ci", "--cpu", *extra]
    try:
        run = subprocess.run(cmd, cwd=comfyui, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"ComfyUI did not finish its start-up test within {timeout:.0f} s"]
    log = run.stdout + run.stderr
    lines = [ln for ln in log.splitlines() if re.search(rf"[/\\]{PACK}\s*$", ln)]
    if run.returncode != 0:
        return [f"ComfyUI's start-up test exited {run.returncode}:\n{log[-3000:]}"]
    if not lines:
        return [f"ComfyUI did not list {PACK} among its custom nodes:\n{log[-3000:]}"]
    if any("IMPORT FAILED" in ln for ln in lines):
        return [f"ComfyUI could not import {PACK}:\n{log[-3000:]}"]
    return []


def check_nodes(comfyui: Path, custom_nodes: Path) -> tuple[list[str], int]:
    sys.path[:0] = [str(comfyui), str(custom_nodes)]
    try:
        pack = importlib.import_module(PACK)
    except Exception as exc:  # noqa: BLE001 - any import failure fails the build
        return [f"import {PACK} failed: {exc.__class__.__name__}: {exc}"], 0
    ids = list(getattr(pack, "NODE_CLASS_MAPPINGS", {}))
    bad = [i for i in ids if not i.startswith("AP_")]
    if not ids or bad:
        return [f"{PACK} registers no nodes, or ids without AP_: {bad or ids}"], len(ids)
    return [], len(ids)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comfyui", default="/comfyui", type=Path)
    p.add_argument("--expect-prefix", help="the venv this must run in (e.g. /opt/venv)")
    p.add_argument("--comfyui-version", help="the pinned ComfyUI version")
    p.add_argument("--base-directory", type=Path, help="ComfyUI --base-directory (its custom_nodes holds the pack)")
    p.add_argument("--allow-missing", action="append", default=[], metavar="PACKAGE",
                   help="a ComfyUI requirement that may be absent (development installs only)")
    p.add_argument("--timeout", type=float, default=600.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    comfyui = args.comfyui.resolve()
    extra = ["--base-directory", str(args.base_directory)] if args.base_directory else []
    custom_nodes = (args.base_directory or comfyui) / "custom_nodes"
    problems = check_environment(comfyui, args.expect_prefix) + check_packages(comfyui, args.comfyui_version,
                                                                                 args.allow_missing)
    if not problems:
        problems += check_startup(comfyui, extra, args.timeout)
    node_problems, n_nodes = check_nodes(comfyui, custom_nodes)
    problems += node_problems
    for problem in problems:
        print(f"smoke test: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"smoke test: ok: {sys.prefix}, ComfyUI {args.comfyui_version or '(any version)'} starts and loads "
              f"{PACK} ({n_nodes} nodes)")
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
