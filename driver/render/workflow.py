"""API-format workflow templates and the graph operations the driver needs (pure).

The driver only touches nodes it finds by their title (``_meta.title``), never by node
id, so an artist can edit a template in the canvas, export it with "Export (API)", and
the driver still binds it. A title may be on several nodes (e.g. "Model Sampling" on
both WAN experts): a binding then sets all of them. A missing title or input is an
error naming the template, the title and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from driver.errors import ConfigError


class TemplateError(ConfigError, code="template_invalid"):
    """A workflow template cannot be used: unreadable, not API format, or lacking a
    titled node / input the driver binds."""


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def load_template(path: Path) -> dict:
    """Read an API-format template; reject UI-format files with a hint."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read workflow template {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TemplateError(f"workflow template {path} is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "nodes" in doc and "links" in doc:
        raise TemplateError(f"{path} is a UI-format workflow; export it from the canvas with 'Export (API)'")
    entries = doc.items() if isinstance(doc, dict) else []
    bad = [k for k, v in entries if not (isinstance(v, dict) and "class_type" in v)]
    if not isinstance(doc, dict) or not doc or bad:
        raise TemplateError(f"{path} is not an API-format workflow (node ids mapping to class_type + inputs)"
                            + (f"; bad entries: {bad[:5]}" if bad else ""))
    return doc


def title_of(node: dict) -> str | None:
    return (node.get("_meta") or {}).get("title")


def find(prompt: dict, title: str) -> list[str]:
    """Ids of the nodes titled ``title``, in id order."""
    return sorted((nid for nid, n in prompt.items() if title_of(n) == title), key=_id_key)


def _id_key(nid: str):
    return (0, int(nid), "") if nid.isdigit() else (1, 0, nid)


def workflow_hash(prompt: dict) -> str:
    """sha256 of the canonical JSON of a workflow (sorted keys, no whitespace)."""
    canon = json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class Binder:
    """Sets inputs on titled nodes of a copy of a template; collects every problem
    before raising, so one error lists all missing titles / inputs of the template."""

    def __init__(self, template: dict, name: str):
        self.prompt = copy.deepcopy(template)
        self.name = name
        self.problems: list[str] = []

    def has(self, title: str) -> bool:
        return bool(find(self.prompt, title))

    def set(self, title: str, **inputs) -> None:
        ids = find(self.prompt, title)
        if not ids:
            self.problems.append(f"no node titled {title!r} (to set {', '.join(inputs)})")
            return
        for nid in ids:
            node = self.prompt[nid]
            for name, value in inputs.items():
                if name not in node["inputs"]:
                    self.problems.append(f"node {title!r} ({node['class_type']}, id {nid}) has no input {name!r}")
                elif is_link(node["inputs"][name]):
                    self.problems.append(f"node {title!r} ({node['class_type']}, id {nid}) input {name!r} is linked "
                                         "to another node; the driver sets it, so it must be a widget value")
                else:
                    node["inputs"][name] = value

    def require(self, *titles: str) -> None:
        for t in titles:
            if not self.has(t):
                self.problems.append(f"no node titled {t!r}")

    def bypass(self, title: str, passthrough: dict[int, str] | None = None) -> None:
        """Remove the nodes titled ``title``: a consumer of output slot ``k`` is linked to
        whatever fed the node's input ``passthrough[k]``; other consumers lose that input
        (fine for optional inputs; the server rejects a required one)."""
        for nid in find(self.prompt, title):
            bypass_node(self.prompt, nid, passthrough or {})

    def result(self) -> dict:
        if self.problems:
            listing = "\n".join(f"  - {p}" for p in dict.fromkeys(self.problems))
            raise TemplateError(f"workflow template {self.name} cannot be bound:\n{listing}",
                                problems=list(dict.fromkeys(self.problems)))
        return self.prompt


def consumers(prompt: dict, nid: str) -> Iterable[tuple[str, str, int]]:
    """(consumer id, input name, slot) for every link out of node ``nid``."""
    for cid, node in prompt.items():
        for name, value in node["inputs"].items():
            if is_link(value) and value[0] == nid:
                yield cid, name, value[1]


def bypass_node(prompt: dict, nid: str, passthrough: dict[int, str]) -> None:
    node = prompt.pop(nid)
    for cid, name, slot in list(consumers(prompt, nid)):
        source = node["inputs"].get(passthrough.get(slot, ""))
        if is_link(source):
            prompt[cid]["inputs"][name] = list(source)
        else:
            del prompt[cid]["inputs"][name]


def _drop_orphans(prompt: dict, candidates: Iterable[str]) -> None:
    """Remove candidate nodes (and, recursively, their sources) that feed nothing."""
    todo = list(candidates)
    while todo:
        nid = todo.pop()
        if nid in prompt and not any(True for _ in consumers(prompt, nid)):
            node = prompt.pop(nid)
            todo += [v[0] for v in node["inputs"].values() if is_link(v)]


def add_node(prompt: dict, class_type: str, inputs: dict, title: str) -> str:
    """Add a titled node under the next free numeric id; returns its id."""
    new_id = str(max((int(n) for n in prompt if n.isdigit()), default=0) + 1)
    prompt[new_id] = {"class_type": class_type, "inputs": dict(inputs), "_meta": {"title": title}}
    return new_id


def _only(prompt: dict, title: str) -> str:
    ids = find(prompt, title)
    if len(ids) != 1:
        raise TemplateError(f"expected one node titled {title!r}, found {len(ids)}", problems=[f"{title}: {len(ids)}"])
    return ids[0]


def splice(prompt: dict, title: str, slot: int, class_type: str, inputs: dict, link_input: str, new_title: str) -> str:
    """Insert a new node on output ``slot`` of the node titled ``title``: the new node reads that
    output as ``link_input`` and every former consumer of it reads the new node's output 0."""
    src = _only(prompt, title)
    readers = [(cid, name) for cid, name, s in consumers(prompt, src) if s == slot]
    new_id = add_node(prompt, class_type, {**inputs, link_input: [src, slot]}, new_title)
    for cid, name in readers:
        prompt[cid]["inputs"][name] = [new_id, 0]
    return new_id


def link(prompt: dict, title: str, input_name: str, source: str, slot: int = 0) -> None:
    """Connect output ``slot`` of node ``source`` to (optional) input ``input_name`` of the node titled ``title``."""
    prompt[_only(prompt, title)]["inputs"][input_name] = [source, slot]


def replace_with_one(prompt: dict, titles: list[str], class_type: str, inputs: dict, title: str) -> str:
    """Replace the nodes titled ``titles[k]`` by output slot ``k`` of one new node.

    Used by test configs to stand in for the text encoder: the "Positive Prompt" and
    "Negative Prompt" CLIPTextEncode nodes become the two outputs of one conditioning
    node; the text encoder loader that fed only them is removed."""
    new_id = add_node(prompt, class_type, inputs, title)
    sources = []
    for slot, t in enumerate(titles):
        for nid in find(prompt, t):
            for cid, name, _ in list(consumers(prompt, nid)):
                prompt[cid]["inputs"][name] = [new_id, slot]
            sources += [v[0] for v in prompt.pop(nid)["inputs"].values() if is_link(v)]
    _drop_orphans(prompt, sources)
    return new_id


def titled_outputs(prompt: dict, titles: dict[str, str]) -> dict[str, str]:
    """Node id -> role for the output nodes named in ``titles`` (title -> role)."""
    out = {}
    for title, role in titles.items():
        for nid in find(prompt, title):
            out[nid] = role
    return out
