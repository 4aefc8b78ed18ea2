"""Development code stays out of the product: ``devkit`` is not packaged, neither the
driver nor the pack imports it (or the tests), and the benchmarks run as modules from
the repository root without editing ``sys.path``."""

import ast
import fnmatch
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}


def test_the_wheel_packages_no_development_code():
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for name in ("devkit", "devkit.harness", "tests", "benchmarks"):
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in find["include"]), name
    assert all(any(fnmatch.fnmatch(n, p) for p in find["include"]) for n in ("driver", "driver.render"))


def test_product_code_never_imports_development_code():
    product = [*(REPO / "driver").rglob("*.py"), *(REPO / "custom_nodes" / "anime_pipeline").rglob("*.py")]
    bad = {str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0] in ("devkit", "tests",
                                                                                           "benchmarks"))
           for p in product}
    assert not {k: v for k, v in bad.items() if v}


def test_benchmarks_leave_sys_path_alone():
    for path in (REPO / "benchmarks").glob("*.py"):
        assert "sys.path" not in path.read_text(encoding="utf-8"), path.name
        assert not any(m.split(".")[0] == "tests" for m in _imports(path)), path.name
