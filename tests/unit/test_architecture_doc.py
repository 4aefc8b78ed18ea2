"""docs/architecture.md names only what exists: every ``code`` span is a file path in
the repository, a driver module, an attribute of one, or a name defined (or a node id /
config key spelled) in the driver or the pack."""

import ast
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"


def _defined_names() -> set[str]:
    names = set()
    for root in (REPO / "driver", REPO / "custom_nodes" / "anime_pipeline"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                    names.add(node.value)  # node ids, config keys
    return names


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def check(span: str, defined: set[str]) -> bool:
    span = span.strip()
    if span.startswith("python -m "):
        return _resolves(span.split()[2].replace("bench_x", "bench_farm"))
    if "/" in span or span.endswith((".md", ".json")):
        path = re.sub(r"<[^>]+>", "*", span.split()[0])
        return any(REPO.glob(path)) or (REPO / "custom_nodes" / "anime_pipeline" / path).exists()
    if span.startswith("--"):
        return True  # command-line options: checked by the CLI tests
    name = span.split("(")[0]
    if name.startswith("driver."):
        return _resolves(name)
    if "<" in name:
        return any(d.startswith(name.split("<")[0]) for d in defined)
    owner, _, attr = name.partition(".")
    return owner in defined and (not attr or attr in defined)


def test_every_name_in_the_architecture_page_exists():
    spans = re.findall(r"`([^`]+)`", DOC.read_text(encoding="utf-8"))
    assert len(spans) > 60
    defined = _defined_names()
    missing = [s for s in spans if not check(s, defined)]
    assert not missing


def test_the_check_catches_a_wrong_name():
    defined = _defined_names()
    assert not check("driver.render.nope", defined) and not check("NoSuchClass", defined)
    assert not check("docs/nope.md", defined) and check("Scheduler", defined)
