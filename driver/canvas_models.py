"""What an example workflow says about its model files: ``properties.models`` on every loader (the form
ComfyUI's frontend 1.27 reads for its missing-models dialog), the workflow's own ``models`` for files a node loads
without naming them, and a ``Models`` note on the canvas that says the same. Used by :mod:`driver.canvas`."""

from __future__ import annotations

from anime_pipeline.examples import MODEL_SOURCES, model_entry, node_model_files, sibling_files

NOTE_TYPES = {"Note", "MarkdownNote"}
MODELS_NOTE = "Models"


def annotate_models(wf: dict) -> list[str]:
    """``properties.models`` on every node whose widgets name model files, the LoRA
    siblings a WAN 2.2 stack loads in the workflow's own ``models``; returns every file
    named, in order. ValueError names a file missing from ``MODEL_SOURCES``."""
    named: list[str] = []
    for node in wf["nodes"]:
        files = node_model_files(node) if node["type"] not in NOTE_TYPES else []
        unknown = [f for f in files if f not in MODEL_SOURCES]
        if unknown:
            raise ValueError(f"node {node['id']} ({node['type']}) names {unknown[0]!r}, which is not in "
                             "anime_pipeline.examples.MODEL_SOURCES: add its models folder and official source")
        entries = [model_entry(f) for f in files]
        props = node.setdefault("properties", {})
        props.pop("models", None)
        if any(e["url"] for e in entries):
            props["models"] = [e for e in entries if e["url"]]
        named += [f for f in files if f not in named]
    siblings = sibling_files(wf["nodes"])
    wf.pop("models", None)
    if any(MODEL_SOURCES[f][1] for f in siblings):
        wf["models"] = [model_entry(f) for f in siblings if MODEL_SOURCES[f][1]]
    return named + [f for f in siblings if f not in named]


def models_note_text(files: list[str]) -> str:
    intro = ("Put these files in `ComfyUI/models/` (ComfyUI lists the missing ones when the workflow "
             "opens and offers to download them):")
    lines = ["## Models", intro, ""]
    for name in files:
        directory, url = MODEL_SOURCES[name]
        where = f"[download]({url})" if url else "your own file (not downloadable)"
        lines.append(f"- `{directory}/{name}`: {where}")
    return "\n".join(lines)


def set_note(wf: dict, title: str, text: str | None) -> None:
    """Set the text of the MarkdownNote titled ``title`` (kept where it is), add it, or
    (``text`` None) remove it."""
    note = next((n for n in wf["nodes"] if n["type"] in NOTE_TYPES and n.get("title") == title), None)
    if text is None:
        wf["nodes"] = [n for n in wf["nodes"] if n is not note]
    elif note is not None:
        note["widgets_values"] = [text]
    else:
        new_id = max([n["id"] for n in wf["nodes"]], default=0) + 1
        wf["nodes"].append({"id": new_id, "type": "MarkdownNote", "title": title, "pos": [0, 0],
                            "size": [440, 120], "flags": {}, "order": len(wf["nodes"]), "mode": 0, "inputs": [],
                            "outputs": [], "properties": {}, "widgets_values": [text]})
        wf["last_node_id"] = max(wf.get("last_node_id", 0), new_id)


def name_models(wf: dict) -> dict:
    """Model metadata on the loaders and the Models note that says the same."""
    files = annotate_models(wf)
    set_note(wf, MODELS_NOTE, models_note_text(files) if files else None)
    return wf
