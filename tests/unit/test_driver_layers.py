"""The driver's packages import only what their ``__init__`` docstrings allow (as
test_core_purity keeps the pack's ``core/`` free of ComfyUI): the layering shown in
docs/architecture.md is enforced, not just described."""

import ast
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parents[2] / "driver"
BASE = {"driver", "driver.errors", "driver.files", "driver.lock", "driver.images", "driver.config", "driver.validation",
        "driver.progress"}
COMFY_MODULES: set[str] = set()  # top-level modules of the ComfyUI connection (all in driver.comfy now)

#: layer -> the layers it may import (besides itself)
ALLOWED = {
    "base": {"base"},
    "story": {"base"},
    "comfy": {"base"},
    "outputs": {"base", "story"},
    "render": {"base", "story", "outputs", "comfy"},
    "farm": {"base", "story", "outputs", "comfy", "render"},
    "commands": {"base", "story", "outputs", "comfy", "render", "farm"},
}
FORBIDDEN_TOP = {"tests", "devkit", "benchmarks", "comfy", "folder_paths", "nodes", "server", "execution"}


def layer(module: str) -> str:
    parts = module.split(".")
    if module in BASE:
        return "base"
    if module in COMFY_MODULES or parts[1] == "comfy":
        return "comfy"
    if parts[1] in ("story", "render", "outputs", "farm"):
        return parts[1]
    return "commands"


def module_name(path: Path) -> str:
    rel = path.relative_to(DRIVER.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports (relative imports resolved), functions' included."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append(target)
            out += [f"{target}.{a.name}" for a in node.names]  # ``from driver import outputs``
    return out


def resolve(target: str) -> str | None:
    """The driver module ``target`` names (a module or a package), else None."""
    parts = target.split(".")
    while len(parts) > 1 and parts[0] == "driver":
        candidate = ".".join(parts)
        path = DRIVER.parent.joinpath(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return candidate
        parts = parts[:-1]
    return None


MODULES = sorted(DRIVER.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_layers(path):
    here = layer(module_name(path))
    bad = []
    for target in imports(path):
        if target.split(".")[0] in FORBIDDEN_TOP:
            bad.append(f"{target} (development or ComfyUI code)")
            continue
        mod = resolve(target)
        if mod is None or mod == "driver":
            continue
        there = layer(mod)
        if there != here and there not in ALLOWED[here]:
            bad.append(f"{mod} ({there})")
    assert not bad, f"{module_name(path)} ({here} layer) may not import: {sorted(set(bad))}"


def test_every_package_says_what_it_owns_and_may_import():
    for init in DRIVER.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if init.parent == DRIVER:
            continue
        assert "import" in doc and len(doc) > 80, f"{init} needs a docstring: what it owns, what it may import"


def test_the_rules_catch_a_wrong_import(tmp_path):
    assert layer("driver.outputs.manifest") == "outputs" and "render" not in ALLOWED["outputs"]
    assert resolve("driver.render.scheduler.Scheduler") == "driver.render.scheduler"
    assert resolve("driver.nope") is None and resolve("driver") is None


def test_modules_and_functions_stay_small():
    """No driver module over 300 lines, no function over 60 (docstring included)."""
    too_long = []
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 300:
            too_long.append(f"{module_name(path)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long
