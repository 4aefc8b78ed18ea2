"""Convert a UI-format (canvas) workflow to API format, as the frontend's "Export (API)"
does (reference: comfyui.md §6.6), using the server's ``/object_info`` for input order.

Handles muted (mode 2) and bypassed (mode 4) nodes, Reroute and Note nodes. Strict on
purpose: a node whose ``widgets_values`` do not match its declared widget inputs, in count
or type, raises, so a mis-ordered example workflow fails its test.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASS = 2, 4


class ConversionError(ValueError):
    pass


def _is_widget(spec) -> bool:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _check_value(node, name, spec, value):
    kind = spec[0]
    ok = True
    if isinstance(kind, list):
        ok = isinstance(value, str)
    elif kind == "INT":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "FLOAT":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "BOOLEAN":
        ok = isinstance(value, bool)
    elif kind == "STRING":
        ok = isinstance(value, str)
    if not ok:
        raise ConversionError(f"node {node['id']} ({node['type']}): widget {name!r} expects {kind if not isinstance(kind, list) else 'a combo choice'}, "
                              f"got {value!r}: widgets_values are out of order")


def convert(workflow: dict, object_info: dict) -> dict:
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {l[0]: l for l in workflow.get("links", [])}  # [id, from, from_slot, to, to_slot, type]

    def resolve(link_id):
        """Follow a link to the real producing node, through Reroutes and bypassed nodes."""
        seen = set()
        while link_id is not None:
            if link_id in seen:
                raise ConversionError(f"link cycle at {link_id}")
            seen.add(link_id)
            _, src, slot, _, _, ltype = links[link_id]
            node = nodes[src]
            if node["type"] == "Reroute" or node.get("mode") == BYPASS:
                candidates = [i for i in node.get("inputs", []) if i.get("link") is not None
                              and (node["type"] == "Reroute" or i.get("type") == ltype)]
                if not candidates:
                    return None
                link_id = candidates[0]["link"]
                continue
            if node.get("mode") == MUTED:
                return None
            return [str(src), slot]
        return None

    prompt = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in VIRTUAL or node.get("mode") in (MUTED, BYPASS):
            continue
        if ntype not in object_info:
            raise ConversionError(f"node {node['id']}: type {ntype!r} is not known to the server")
        info = object_info[ntype]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            raise ConversionError(f"node {node['id']} ({ntype}): dict widgets_values are not supported")
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        inputs = {}
        pos = 0
        for name in order:
            spec = specs[name]
            if _is_widget(spec):
                if pos >= len(values):
                    if name in linked:
                        continue
                    raise ConversionError(f"node {node['id']} ({ntype}): no widget value for {name!r} "
                                          f"({len(values)} values for the widgets {[n for n in order if _is_widget(specs[n])]})")
                value = values[pos]
                pos += 1
                opts = spec[1] if len(spec) > 1 else {}
                if opts.get("control_after_generate"):
                    pos += 1
                if opts.get("image_upload") or opts.get("video_upload"):  # the upload button's value
                    pos += 1
                if name not in linked:
                    _check_value(node, name, spec, value)
                    inputs[name] = {"__value__": value} if isinstance(value, list) else value
            if name in linked:
                src = resolve(linked[name])
                if src is not None:
                    inputs[name] = src
        if pos != len(values):
            raise ConversionError(f"node {node['id']} ({ntype}): {len(values)} widget values but the node declares "
                                  f"{pos} (widgets: {[n for n in order if _is_widget(specs[n])]})")
        entry = {"class_type": ntype, "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        prompt[str(node["id"])] = entry
    # drop links to removed nodes
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt
