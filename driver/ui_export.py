"""API-format template -> UI-format (canvas) workflow, using a server's ``/object_info``
for input order, so artists can open the driver's templates in ComfyUI.

    python -m driver.ui_export --server http://127.0.0.1:8188 workflows/*.api.json \\
        --out custom_nodes/anime_pipeline/example_workflows

``widgets_values`` follow ``INPUT_TYPES`` order exactly (a widget that is linked keeps
its default value in its slot, seeds get a ``fixed`` control value, ``LoadImage`` its
upload-button value), as the frontend writes them. Nodes are laid out in columns by
graph depth. Titles listed in ``--bypass`` are exported bypassed (mode 4), e.g. the
character LoRA nodes, which need a registry to run (a node fed only by a bypassed
node that cannot pass its value through is bypassed with it)."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

from .comfy.client import ComfyClient
from .render.workflow import is_link, load_template, title_of

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
BYPASS = 4
DEFAULT_BYPASS = ("Character LoRAs", "Identity Gate")  # need a registry / a CLIP-vision model


def is_widget(spec) -> bool:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    return not opts.get("forceInput") and (isinstance(kind, list) or kind in WIDGET_TYPES)


def _default(spec):
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, list):
        return kind[0] if kind else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind, "")


def _depths(prompt: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(nid: str, seen=()) -> int:
        if nid not in depth:
            ups = [v[0] for v in prompt[nid]["inputs"].values() if is_link(v) and v[0] not in seen]
            depth[nid] = 1 + max((visit(u, seen + (nid,)) for u in ups), default=-1)
        return depth[nid]

    for nid in prompt:
        visit(nid)
    return depth


def _bypassed(prompt: dict, object_info: dict, titles: tuple[str, ...]) -> set[str]:
    """Nodes titled ``titles``, plus any node whose required input comes from a bypassed
    node that cannot pass a value of that type through (so the graph stays valid)."""
    out_type = lambda link: object_info[prompt[link[0]]["class_type"]]["output"][link[1]]  # noqa: E731
    bypassed = {nid for nid, n in prompt.items() if title_of(n) in titles}
    changed = True
    while changed:
        changed = False
        for nid, node in prompt.items():
            required = object_info[node["class_type"]]["input"].get("required", {})
            for name, v in node["inputs"].items():
                if nid in bypassed or not (is_link(v) and v[0] in bypassed and name in required):
                    continue
                src = prompt[v[0]]["inputs"].values()
                if not any(is_link(u) and out_type(u) == out_type(v) for u in src):
                    bypassed.add(nid)
                    changed = True
    return bypassed


def to_ui(prompt: dict, object_info: dict, *, bypass: tuple[str, ...] = DEFAULT_BYPASS) -> dict:
    depth = _depths(prompt)
    bypassed = _bypassed(prompt, object_info, bypass)
    order = sorted(prompt, key=lambda n: (depth[n], int(n) if n.isdigit() else 0))
    rows: dict[int, int] = {}
    nodes: dict = {}
    links: list[list] = []
    for index, nid in enumerate(order):
        node, info = prompt[nid], object_info[prompt[nid]["class_type"]]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        inputs, values = [], []
        for name in names:
            spec, value = specs[name], node["inputs"].get(name)
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            if is_widget(spec):
                values.append(_default(spec) if value is None or is_link(value) else value)
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if opts.get("control_after_generate"):
                    values.append("fixed")
                if opts.get("image_upload"):
                    values.append("image")
                if is_link(value):
                    inputs.append({"name": name, "type": kind, "widget": {"name": name}, "link": None})
            else:
                inputs.append({"name": name, "type": kind, "link": None})
        row = rows.get(depth[nid], 0)
        rows[depth[nid]] = row + 1
        names_out = info.get("output_name") or info["output"]
        outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                   for i, (n, t) in enumerate(zip(names_out, info["output"], strict=True))]
        nodes[nid] = {"id": int(nid), "type": node["class_type"], "pos": [60 + 380 * depth[nid], 60 + 260 * row],
                      "size": [340, 120 + 24 * len(values)], "flags": {}, "order": index,
                      "mode": BYPASS if nid in bypassed else 0, "inputs": inputs, "outputs": outputs,
                      "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values}
        if title_of(node):
            nodes[nid]["title"] = title_of(node)
    for nid in order:
        for slot, inp in enumerate(nodes[nid]["inputs"]):
            value = prompt[nid]["inputs"].get(inp["name"])
            if is_link(value):
                link_id = len(links) + 1
                src = nodes[value[0]]
                links.append([link_id, int(value[0]), value[1], int(nid), slot, src["outputs"][value[1]]["type"]])
                inp["link"] = link_id
                src["outputs"][value[1]]["links"].append(link_id)
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(prompt, sort_keys=True))), "revision": 0,
            "last_node_id": max(int(n) for n in prompt), "last_link_id": len(links),
            "nodes": [nodes[n] for n in order], "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.7, "offset": [0, 0]}}, "version": 0.4}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m driver.ui_export", description=__doc__.split("\n\n")[0])
    p.add_argument("templates", nargs="+", type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--server", help="ComfyUI URL to read /object_info from")
    src.add_argument("--object-info", type=Path, help="a saved /object_info JSON")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--bypass", nargs="*", default=list(DEFAULT_BYPASS), help="titles exported bypassed")
    args = p.parse_args(argv)
    info = ComfyClient(args.server).object_info() if args.server else json.loads(args.object_info.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.templates:
        ui = to_ui(load_template(path), info, bypass=tuple(args.bypass))
        dest = args.out / f"wf_{path.name.removesuffix('.api.json')}.json"
        dest.write_text(json.dumps(ui, indent=1) + "\n")
        print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
