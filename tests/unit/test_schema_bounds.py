"""Every limit of the storyboard schema is at least as strict as the node input it feeds, so
``validate`` never calls valid what the node refuses (``zoom_end: 1e-9`` against a node
minimum of 0.01, ``fps: 1e-9`` against 1). The node bounds come from the pack's
``INPUT_TYPES`` here, and from a real server's ``/object_info`` (core nodes too) in
``tests/integration/test_hardening.py``."""

from __future__ import annotations

import json
import math

import pytest

from anime_pipeline.nodes import NODE_CLASS_MAPPINGS
from driver.story.storyboard import load_schema

#: schema location (keys into storyboards/schema.json) -> the node inputs its value feeds
#: (class_type, input name), as ``driver.render.compile`` binds them
BOUND = {
    ("properties", "delivery", "properties", "width"): [("AP_HeldFramePush", "width"),
                                                         ("WanFirstLastFrameToVideo", "width"),
                                                         ("ImageScale", "width")],
    ("properties", "delivery", "properties", "height"): [("AP_HeldFramePush", "height"),
                                                          ("WanFirstLastFrameToVideo", "height"),
                                                          ("ImageScale", "height")],
    ("properties", "delivery", "properties", "fps"): [("AP_HeldFramePush", "fps"), ("AP_AnimeRetime", "fps_out"),
                                                       ("CreateVideo", "fps")],
    ("properties", "delivery", "properties", "keyframe_width"): [("AP_TriptychSplit", "target_width"),
                                                                  ("EmptyLatentImage", "width")],
    ("properties", "delivery", "properties", "keyframe_height"): [("AP_TriptychSplit", "target_height"),
                                                                   ("EmptyLatentImage", "height")],
    ("$defs", "shot", "properties", "duration_s"): [("AP_HeldFramePush", "duration_s")],
    ("$defs", "shot", "properties", "seed"): [("KSamplerAdvanced", "noise_seed"), ("KSampler", "seed")],
    ("$defs", "shot", "properties", "push", "properties", "zoom_start"): [("AP_HeldFramePush", "zoom_start")],
    ("$defs", "shot", "properties", "push", "properties", "zoom_end"): [("AP_HeldFramePush", "zoom_end")],
    ("$defs", "point", "items"): [("AP_HeldFramePush", n) for n in
                                  ("center_x_start", "center_y_start", "center_x_end", "center_y_end")],
}


def schema_at(keys: tuple[str, ...]) -> dict:
    node = load_schema()
    for k in keys:
        node = node[k]
    return node


def input_spec(object_info: dict, class_type: str, name: str) -> dict | None:
    """The options of input ``name`` of ``class_type`` in an ``/object_info``-shaped dict."""
    inputs = object_info[class_type]["input"]
    for section in ("required", "optional"):
        spec = inputs.get(section, {}).get(name)
        if spec is not None:
            return spec[1] if len(spec) > 1 else {}
    return None


def bound_problems(keys: tuple[str, ...], class_type: str, name: str, opts: dict) -> list[str]:
    """Where the schema at ``keys`` is looser than the node input's ``min`` / ``max`` / ``step``."""
    s = schema_at(keys)
    where = f"schema {'.'.join(keys)} vs {class_type}.{name}"
    out = []
    lo = s.get("minimum", s.get("exclusiveMinimum", -math.inf))
    if "min" in opts and lo < opts["min"]:  # values > an exclusive bound L, or >= a bound L: safe when L >= min
        out.append(f"{where}: schema minimum {lo} below the node's {opts['min']}")
    hi = s.get("maximum", s.get("exclusiveMaximum", math.inf))
    if "max" in opts and hi > opts["max"]:
        out.append(f"{where}: schema maximum {hi} above the node's {opts['max']}")
    step = opts.get("step")
    if s.get("type") == "integer" and isinstance(step, int) and step > 1 and s.get("multipleOf", 1) % step:
        out.append(f"{where}: schema multipleOf {s.get('multipleOf', 1)} is not a multiple of the node's step {step}")
    return out


def pack_object_info() -> dict:
    """``/object_info``'s ``input`` sections of the pack's nodes, without a server (JSON round trip,
    as the server sends them)."""
    return {k: {"input": json.loads(json.dumps(cls.INPUT_TYPES(), default=str))}
            for k, cls in NODE_CLASS_MAPPINGS.items()}


PACK_CASES = [(keys, ct, name) for keys, targets in BOUND.items() for ct, name in targets if ct.startswith("AP_")]


@pytest.mark.parametrize("keys,class_type,name", PACK_CASES, ids=lambda v: v if isinstance(v, str) else ".".join(v))
def test_schema_is_at_least_as_strict_as_the_pack_node(keys, class_type, name):
    opts = input_spec(pack_object_info(), class_type, name)
    assert opts is not None, f"{class_type} has no input {name!r}: update BOUND"
    assert bound_problems(keys, class_type, name, opts) == []


def test_the_checker_catches_the_old_loose_bounds():
    """The first wave's bounds (exclusiveMinimum 0 for zoom and fps) are caught."""
    opts = {"min": 0.01, "max": 16.0}
    schema = load_schema()
    push = schema["$defs"]["shot"]["properties"]["push"]["properties"]
    saved = dict(push["zoom_end"])
    try:
        push["zoom_end"] = {"type": "number", "exclusiveMinimum": 0, "maximum": 8}
        assert bound_problems(("$defs", "shot", "properties", "push", "properties", "zoom_end"),
                              "AP_HeldFramePush", "zoom_end", opts) == [
            "schema $defs.shot.properties.push.properties.zoom_end vs AP_HeldFramePush.zoom_end: schema minimum 0 "
            "below the node's 0.01"]
    finally:
        push["zoom_end"] = saved
