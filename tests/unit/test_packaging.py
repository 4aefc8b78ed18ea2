"""Packaging rules: dependency lists agree, the registry metadata is complete, and the
pure modules never import ComfyUI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "custom_nodes" / "anime_pipeline"
COMFY_MODULES = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "server", "nodes",
                 "execution", "latent_preview", "node_helpers"}


def _req_names(lines):
    return sorted(l.strip() for l in lines if l.strip() and not l.strip().startswith("#"))


def test_pack_requirements_match_its_pyproject():
    meta = tomllib.loads((PACK / "pyproject.toml").read_text())
    reqs = _req_names((PACK / "requirements.txt").read_text().splitlines())
    assert reqs == sorted(meta["project"]["dependencies"])


def test_pack_registry_metadata():
    meta = tomllib.loads((PACK / "pyproject.toml").read_text())
    comfy = meta["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon"} <= comfy.keys()
    assert "comfyui" not in meta["project"]["name"].lower()


def test_pack_dependencies_are_also_the_repo_dependencies():
    repo = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pack = tomllib.loads((PACK / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(pack) <= set(repo)


def _imports(tree, *, top_level_only: bool):
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("path", sorted(PACK.rglob("*.py")), ids=lambda p: str(p.relative_to(PACK)))
def test_no_comfyui_import_at_module_level(path):
    tree = ast.parse(path.read_text())
    pure = "core" in path.relative_to(PACK).parts
    found = set(_imports(tree, top_level_only=not pure)) & COMFY_MODULES
    assert not found, f"{path.relative_to(PACK)} imports ComfyUI modules {sorted(found)}" + \
        (" (core modules may not import ComfyUI at all)" if pure else " at module level")


def test_pure_modules_import_without_torch():
    """The driver imports the pack's naming and segment maths without pulling in torch."""
    code = ("import sys, importlib\n"
            "import anime_pipeline, anime_pipeline.core.contracts\n"
            "for m in ('anime_pipeline.core.segments', 'anime_pipeline.core.naming'):\n"
            "    try: importlib.import_module(m)\n"
            "    except ModuleNotFoundError as e:\n"
            "        if e.name != m: raise\n"
            "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if k.startswith('torch'))[:3]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
