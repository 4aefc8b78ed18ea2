"""Lint every node of the pack (the conventions artists' saved workflows rely on) and
check that the pack README's node contract table matches the code."""

from __future__ import annotations

import math

import pytest

from anime_pipeline import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from devkit.harness import node_docs

NODES = sorted(NODE_CLASS_MAPPINGS.items())


def test_every_node_has_a_display_name():
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("node_id,cls", NODES, ids=[n for n, _ in NODES])
def test_node_follows_the_pack_conventions(node_id, cls):
    assert node_id.startswith("AP_")
    assert cls.CATEGORY.startswith("anime_pipeline/")
    assert cls.DESCRIPTION.strip(), "DESCRIPTION is empty"
    assert callable(getattr(cls, cls.FUNCTION, None)), f"FUNCTION {cls.FUNCTION!r} is not a method"
    names = getattr(cls, "RETURN_NAMES", None)
    assert names is not None and len(names) == len(cls.RETURN_TYPES)
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None)
    assert tips is not None and len(tips) == len(cls.RETURN_TYPES) and all(t.strip() for t in tips)
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            opts = s[1] if len(s) > 1 else {}
            assert opts.get("tooltip", "").strip(), f"input {name!r} has no tooltip"
            if "default" not in opts:
                continue
            default = opts["default"]
            if isinstance(s[0], list) and s[0]:
                assert default in s[0], f"{name}: default {default!r} not among the choices"
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert math.isfinite(default)
                assert opts.get("min", -math.inf) <= default <= opts.get("max", math.inf), \
                    f"{name}: default {default} outside [{opts.get('min')}, {opts.get('max')}]"


def test_readme_contract_table_is_current():
    block = node_docs.current_block()
    assert block is not None, "custom_nodes/anime_pipeline/README.md lacks the node contract block"
    assert block == node_docs.render(), "node contract table is stale: run `python -m devkit.harness.node_docs --write`"
