"""The character LoRA registry: parsing, JSON-Schema validation, character resolution.

Format (``schemas/lora_registry.schema.json``, documented in ``docs/lora_registry.md``)::

    {"characters": {
        "jinx": {"t2i":   {"file": "chars/jinx_sdxl.safetensors", "strength": 1.0, "trigger": "JNXCHAR"},
                 "video": {"high": "chars/jinx_wan22_high_noise.safetensors",
                           "low":  "chars/jinx_wan22_low_noise.safetensors", "strength": 1.0}}}}

A registry is given as inline JSON text (what the driver sends: a remote server's folders
are not readable by it) or as a file name in the loras folder (default
``lora_registry.json``). Torch-free, so the driver can import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .paths import resolve_file
from .stack import AUTO, HIGH, LOW, LoraRow

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "lora_registry.schema.json"
DEFAULT_REGISTRY = "lora_registry.json"
T2I, VIDEO = "t2i", "video"
KINDS = (T2I, VIDEO)
SCALE_TO_STRONGEST, AS_REGISTERED = "scale_to_strongest", "as_registered"
STRENGTH_RULES = (SCALE_TO_STRONGEST, AS_REGISTERED)
_MAX_ERRORS = 8


class RegistryError(ValueError):
    """The registry is unreadable or breaks the schema. ``errors`` holds one
    ``(json_path, message)`` per problem."""

    def __init__(self, source: str, errors: Sequence[tuple[str, str]]):
        self.source = source
        self.errors = list(errors)
        shown = [f"{path}: {msg}" for path, msg in self.errors[:_MAX_ERRORS]]
        if len(self.errors) > _MAX_ERRORS:
            shown.append(f"... and {len(self.errors) - _MAX_ERRORS} more")
        super().__init__(f"invalid LoRA registry ({source}):\n  " + "\n  ".join(shown))


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_registry(doc, source: str = "inline JSON") -> None:
    """Raise :class:`RegistryError` listing every schema violation with its JSON path."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError("the LoRA registry needs the Python package 'jsonschema' "
                           "(pip install jsonschema; it is in the pack's requirements.txt)") from None
    validator = Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        raise RegistryError(source, [(e.json_path, _readable(e, load_schema())) for e in errors])


def _readable(err, schema: dict) -> str:
    """A schema error's message, with the description of what a pattern guards instead of the raw regex."""
    if err.validator != "pattern":
        return err.message
    path = list(err.schema_path)[:-1]  # the sub-schema holding the pattern
    if path and path[-1] == "propertyNames":
        path = path[:-1]  # a name's pattern: the object's description says what names may be
    def deref(node: dict) -> dict:
        return schema["$defs"][node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    node = schema
    for key in path:
        node = deref(node)[key]
    node = node if "description" in node else deref(node)
    return f"{err.instance!r} is not allowed: {node.get('description', 'it does not have the required form')}"


@dataclass(frozen=True)
class Character:
    name: str
    t2i: Mapping | None
    video: Mapping | None


@dataclass(frozen=True)
class Registry:
    characters: Mapping[str, Character]
    source: str

    @classmethod
    def from_dict(cls, doc, source: str = "inline JSON") -> Registry:
        validate_registry(doc, source)
        chars = {name: Character(name, entry.get(T2I), entry.get(VIDEO)) for name, entry in doc["characters"].items()}
        return cls(chars, source)


def parse_json(text: str, source: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"at line {exc.lineno} column {exc.colno}"
        raise RegistryError(source, [("$", f"not valid JSON: {exc.msg} {where}")]) from None


def load_registry(registry: str, dirs: Sequence[str | os.PathLike]) -> Registry:
    """``registry`` is inline JSON (starts with ``{``), a ``.json`` file name relative to
    one of ``dirs`` (the loras folders), or empty for ``lora_registry.json`` there."""
    text = (registry or "").strip()
    if text.startswith("{"):
        return Registry.from_dict(parse_json(text, "inline JSON"))
    name = text or DEFAULT_REGISTRY
    if not name.lower().endswith(".json"):
        raise ValueError(f"registry {name!r} is neither inline JSON (it would start with '{{') nor a .json file name")
    path = resolve_file(name, dirs, what="LoRA registry")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(str(path), [("$", f"cannot be read: {exc}")]) from None
    return Registry.from_dict(parse_json(content, str(path)), str(path))


def parse_names(characters: str) -> list[str]:
    """``"jinx, vi"`` -> ``["jinx", "vi"]``; empty entries are ignored, duplicates raise."""
    names = [n.strip() for n in (characters or "").split(",") if n.strip()]
    if not names:
        raise ValueError("no character names given (comma-separated names from the registry)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"character(s) listed more than once: {dupes}")
    return names


def scale_strengths(strengths: Sequence[float], rule: str) -> list[float]:
    """Per-character strengths for a shot with all of them.

    ``scale_to_strongest``: scale all by one factor so their sum does not exceed the
    strongest single one (1.0 + 1.0 -> 0.5 / 0.5; one character is unchanged).
    ``as_registered``: unchanged."""
    if rule not in STRENGTH_RULES:
        raise ValueError(f"strength rule {rule!r} is not one of {list(STRENGTH_RULES)}")
    strengths = [float(s) for s in strengths]
    total = sum(strengths)
    if rule == AS_REGISTERED or not strengths or total <= max(strengths):
        return strengths
    factor = max(strengths) / total
    return [s * factor for s in strengths]


def resolve(registry: Registry, characters: str, kind: str, rule: str = SCALE_TO_STRONGEST
            ) -> tuple[tuple[LoraRow, ...], list[str]]:
    """The stack rows and trigger words for ``characters`` (comma-separated) of ``kind``.

    ``t2i``: one row per character (target ``auto``). ``video``: two rows per character,
    the high-noise file (target ``high``) then the low-noise file (target ``low``)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {list(KINDS)}")
    names = parse_names(characters)
    unknown = [n for n in names if n not in registry.characters]
    if unknown:
        raise ValueError(f"unknown character(s) {unknown}; the registry ({registry.source}) knows: "
                         f"{sorted(registry.characters)}")
    entries = [getattr(registry.characters[n], kind) for n in names]
    lacking = [n for n, e in zip(names, entries, strict=True) if e is None]
    if lacking:
        raise ValueError(f"character(s) {lacking} have no {kind!r} LoRA in the registry ({registry.source})")
    scaled = scale_strengths([e.get("strength", 1.0) for e in entries], rule)
    rows: list[LoraRow] = []
    triggers: list[str] = []
    for name, entry, s in zip(names, entries, scaled, strict=False):
        if kind == T2I:
            factor = s / entry.get("strength", 1.0)
            s_clip = entry.get("strength_clip", entry.get("strength", 1.0)) * factor
            rows.append(LoraRow(entry["file"], s, s_clip, AUTO))
            triggers.append(entry["trigger"])
        else:
            rows += [LoraRow(entry["high"], s, s, HIGH), LoraRow(entry["low"], s, s, LOW)]
            t2i = registry.characters[name].t2i or {}
            trigger = entry.get("trigger", t2i.get("trigger"))
            if trigger:
                triggers.append(trigger)
    return tuple(rows), triggers
