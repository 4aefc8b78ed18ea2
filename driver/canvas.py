"""Lay out a UI-format (canvas) workflow as a person would draw it, and name its models.

* one canvas group per stage (Load, Keyframes, Video, Gates, Output), left to right,
  nodes in columns by depth inside their stage;
* notes in a band above the groups, so no wire runs under a note;
* ``extra.ds`` set so the whole graph fits the default view of a 1600x1000 window;
* every loader names its model files in ``properties.models`` (what ComfyUI's frontend
  lists in its missing-models dialog), and a ``Models`` note says the same.

Used by ``driver.ui_export`` for the driver's twins and, for the pack's hand-made
examples, from the command line:

    python -m driver.canvas custom_nodes/anime_pipeline/example_workflows/*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .canvas_models import MODELS_NOTE, NOTE_TYPES, name_models, set_note  # noqa: F401 - canvas.* API

STAGES = ("Load", "Keyframes", "Video", "Gates", "Output")
VIEW = (1600, 1000)  # the window the default view must fit
CANVAS = (1536, 922)  # its canvas (frontend 1.27: side bar 64 px, tabs and menu 78 px)
MINIMAP = (1536 - 300, 922 - 290)  # the minimap covers the canvas right and below this corner
MARGIN = 24
COL_GAP, ROW_GAP, GROUP_PAD, GROUP_TITLE, TITLE_H = 36, 36, 16, 44, 30
_LOAD = ("LoadImage", "LoadVideo", "AP_LoadInterpolator", "AP_LoraStack", "AP_LoraStackFromRegistry",
         "AP_ApplyLoraStack", "AP_ApplyLoraStackWan22", "ModelSamplingSD3", "ModelSamplingAuraFlow")
_RENDER = ("CLIPTextEncode", "EmptyLatentImage", "EmptySD3LatentImage", "KSampler", "VAEDecode")
_VIDEO = ("WanFirstLastFrameToVideo", "KSamplerAdvanced", "AP_FLFChainConcat", "AP_HeldFramePush",
          "ImageScale", "RepeatImageBatch")
_OUTPUT = ("AP_AnimeRetime", "ImageFromBatch", "CreateVideo", "SaveVideo", "SaveImage", "PreviewImage")
_WIDE = {"LoadImage": 420, "SaveVideo": 400, "CLIPTextEncode": 400, "CreateVideo": 350}
_TALL = {"LoadImage": 300, "AP_LoraStackFromRegistry": 20, "SaveImage": 260, "PreviewImage": 260, "SaveVideo": 300,
         "PreviewAny": 110, "CLIPTextEncode": 90}


def _type_stage(kind: str, has_video: bool) -> str | None:
    if kind.endswith("Loader") or kind in _LOAD:
        return "Load"
    if kind in _RENDER:
        return "Video" if has_video else "Keyframes"
    if kind in ("AP_TriptychSplit", "AP_FLFSegmentPlan"):
        return "Keyframes"
    if kind in _VIDEO:
        return "Video"
    if kind.startswith("AP_") and (kind.endswith("Gate") or kind == "AP_QualityReport"):
        return "Gates"
    return "Output" if kind in _OUTPUT else None


def _edges(wf: dict) -> list[tuple[int, int]]:
    return [(link[1], link[3]) for link in wf.get("links", [])]


def stages(wf: dict) -> dict[int, str]:
    """Stage of every non-note node: by type; a preview sits with its source, any other
    node with its earliest consumer (else its latest producer, else Load)."""
    nodes = {n["id"]: n for n in wf["nodes"] if n["type"] not in NOTE_TYPES}
    has_video = any(_type_stage(n["type"], False) == "Video" for n in nodes.values())
    ups = {i: [a for a, b in _edges(wf) if b == i and a in nodes] for i in nodes}
    downs = {i: [b for a, b in _edges(wf) if a == i and b in nodes] for i in nodes}
    fixed = {i: _type_stage(n["type"], has_video) for i, n in nodes.items()}
    stage = dict(fixed)
    for _ in nodes:  # propagate until stable (graphs are small)
        for i, node in nodes.items():
            if fixed[i]:
                continue
            if node["type"] == "PreviewAny":
                near = [stage[u] for u in ups[i] if stage[u]][:1]
                stage[i] = near[0] if near else None
                continue
            consumers = [stage[d] for d in downs[i] if stage[d]]
            producers = [stage[u] for u in ups[i] if stage[u]]
            stage[i] = (min(consumers, key=STAGES.index) if consumers else
                        max(producers, key=STAGES.index) if producers else None)
    return {i: s or "Load" for i, s in stage.items()}


def node_size(node: dict) -> list[int]:
    """Width and height (title bar excluded) the frontend gives the node, or a bit more."""
    values = node.get("widgets_values") or []
    slots = max(sum(1 for i in node.get("inputs", []) if "widget" not in i), len(node.get("outputs", [])))
    extra = _TALL.get(node["type"], 0)
    if node["type"] == "AP_LoraStack":
        extra = 60
    width = _WIDE.get(node["type"], 330)
    return [width, 16 + 22 * slots + 26 * len(values) + extra]


def _depth_in_stage(ids: list[int], wf: dict) -> dict[int, int]:
    inside = set(ids)
    ups = {i: [a for a, b in _edges(wf) if b == i and a in inside] for i in ids}
    depth: dict[int, int] = {}

    def visit(i: int, seen: tuple = ()) -> int:
        if i not in depth:
            depth[i] = 1 + max((visit(u, seen + (i,)) for u in ups[i] if u not in seen), default=-1)
        return depth[i]

    for i in ids:
        visit(i)
    return depth


def _columns(ids: list[int], wf: dict, order: dict[int, int], max_h: int) -> list[list[int]]:
    """Nodes of one stage in columns of at most ``max_h``: each node right of the
    nodes it takes input from, in the first column with room (topological order)."""
    depth = _depth_in_stage(ids, wf)
    size = {n["id"]: n["size"] for n in wf["nodes"]}
    ups = {i: [a for a, b in _edges(wf) if b == i and a in depth] for i in ids}
    columns: list[list[int]] = []
    heights: list[int] = []
    where: dict[int, int] = {}
    for i in sorted(ids, key=lambda i: (depth[i], order[i])):
        col, h = 1 + max((where[u] for u in ups[i]), default=-1), size[i][1] + TITLE_H + ROW_GAP
        while col < len(columns) and columns[col] and heights[col] + h > max_h:
            col += 1
        while col >= len(columns):
            columns.append([])
            heights.append(0)
        columns[col].append(i)
        heights[col] += h
        where[i] = col
    return [c for c in columns if c]


def _note_height(node: dict, width: int) -> int:
    text = (node.get("widgets_values") or [""])[0]
    lines = sum(1 + len(line) * 8 // width for line in str(text).splitlines())
    return max(120, 40 + 21 * lines)


def _place(wf: dict, blocks: list[tuple[str, list[int]]], notes: list[int], max_h: int, notes_on_top: bool
           ) -> list[dict]:
    """Place each stage's nodes as columns, left to right, and the notes in a column on
    the left or in a row above; returns the stage groups."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    order = {n["id"]: k for k, n in enumerate(wf["nodes"])}
    x, top = 0, 0
    groups: list[dict] = []
    if notes_on_top:
        for i in notes:
            nodes[i]["pos"] = [x, TITLE_H]
            x += nodes[i]["size"][0] + COL_GAP
        top = max(nodes[i]["size"][1] for i in notes) + TITLE_H + ROW_GAP if notes else 0
        x = 0
    elif notes:
        y = TITLE_H
        for i in notes:
            nodes[i]["pos"] = [0, y]
            y += nodes[i]["size"][1] + TITLE_H + ROW_GAP
        x = max(nodes[i]["size"][0] for i in notes) + 2 * COL_GAP
    for title, ids in blocks:
        gx, bottom = x, top
        for column in _columns(ids, wf, order, max_h):
            y = top + GROUP_TITLE + TITLE_H
            for i in column:
                nodes[i]["pos"] = [x + GROUP_PAD, y]
                y += nodes[i]["size"][1] + TITLE_H + ROW_GAP
            bottom = max(bottom, y)
            x += max(nodes[i]["size"][0] for i in column) + GROUP_PAD + COL_GAP
        groups.append({"id": len(groups) + 1, "title": f"{len(groups) + 1} {title}",
                       "bounding": [gx, top, x - gx - COL_GAP + GROUP_PAD, bottom - top - ROW_GAP + GROUP_PAD],
                       "color": "#3f789e", "font_size": 24, "flags": {}})
        x += COL_GAP
    return groups


def arrange(wf: dict) -> dict:
    """Positions, sizes, stage groups, the notes and the fitted view, in place. Column
    height and where the notes go are chosen for the largest zoom showing everything."""
    for node in wf["nodes"]:
        node["size"] = [400, _note_height(node, 400)] if node["type"] in NOTE_TYPES else node_size(node)
    stage_of = stages(wf)
    notes = [n["id"] for n in wf["nodes"] if n["type"] in NOTE_TYPES]
    blocks = [(s, [i for i in (n["id"] for n in wf["nodes"]) if stage_of.get(i) == s])
              for s in STAGES if s in stage_of.values()]
    tallest = max(n["size"][1] + TITLE_H + ROW_GAP for n in wf["nodes"])
    options = [(h, top) for h in range(max(500, tallest), 3001, 100) for top in (False, True)]
    best = max(options, key=lambda o: (_scale(wf, _place(wf, blocks, notes, *o)), -o[0]))
    wf["groups"] = _place(wf, blocks, notes, *best)
    _fit(wf)
    return wf


def bounds(wf: dict) -> tuple[float, float, float, float]:
    """Smallest box holding every node (title bars included) and group."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H) for n in wf["nodes"]]
    boxes += [tuple(g["bounding"]) for g in wf.get("groups", [])]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes))


def _scale(wf: dict, groups: list[dict]) -> float:
    """The largest zoom (at most 1) showing everything, clear of the minimap."""
    x0, y0, x1, y1 = bounds({**wf, "groups": groups})
    scale = min(1.0, (CANVAS[0] - 2 * MARGIN) / (x1 - x0), (CANVAS[1] - 2 * MARGIN) / (y1 - y0))
    boxes = [(n["pos"][0] - x0, n["pos"][1] - TITLE_H - y0, n["size"][0], n["size"][1] + TITLE_H)
             for n in wf["nodes"]]
    while any(MARGIN + (x + w) * scale > MINIMAP[0] and MARGIN + (y + h) * scale > MINIMAP[1]
              for x, y, w, h in boxes) and scale > 0.05:
        scale *= 0.97
    return scale


def _fit(wf: dict) -> None:
    """``extra.ds`` (canvas px = (graph + offset) * scale) showing the whole graph."""
    x0, y0, _, _ = bounds(wf)
    scale = int(_scale(wf, wf["groups"]) * 1000) / 1000
    wf.setdefault("extra", {})["ds"] = {"scale": scale, "offset": [round(MARGIN / scale - x0, 1),
                                                                   round(MARGIN / scale - y0, 1)]}


def tidy(wf: dict) -> dict:
    """Models metadata, the Models note and the layout: what every example carries."""
    return arrange(name_models(wf))


def rewrite(parser: argparse.ArgumentParser, jobs: list[tuple[Path, Path]], make) -> int:
    """For each (source, dest): write ``make(source, dest)`` to ``dest`` as JSON and print
    ``dest``; a bad file stops with the parser's error naming it."""
    for source, dest in jobs:
        try:
            workflow = make(source, dest)
        except (OSError, ValueError) as exc:
            parser.error(f"{source}: {exc}")
        dest.write_text(json.dumps(workflow, indent=1) + "\n")
        print(dest)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m driver.canvas", description=__doc__.split("\n\n")[0])
    p.add_argument("workflows", nargs="+", type=Path, help="UI-format workflow files, rewritten in place")
    args = p.parse_args(argv)
    return rewrite(p, [(path, path) for path in args.workflows], lambda src, _: tidy(json.loads(src.read_text())))


if __name__ == "__main__":
    raise SystemExit(main())
