"""JSON Schema validation with errors a producer can act on: every problem is one line
``<json path>: <what was expected>``, e.g. ``shots[3].duration_s: expected a number > 0, got -2``.

All problems of a document are reported at once, sorted by path."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

import jsonschema
from jsonschema import Draft202012Validator

from .errors import ConfigError


def json_path(parts: Iterable) -> str:
    """``["shots", 3, "duration_s"]`` -> ``shots[3].duration_s`` (``$`` for the root)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "$"


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(schema: dict) -> str:
    """A readable description of a sub-schema (for type / enum / anyOf messages)."""
    if "const" in schema:
        return f"{_short(schema['const'])}"
    if "enum" in schema:
        return "one of " + ", ".join(_short(v) for v in schema["enum"])
    if "required" in schema and set(schema) <= {"required", "properties"}:
        req = ", ".join(schema["required"])
        nested = [f"{k}.{r}" for k, s in (schema.get("properties") or {}).items() for r in s.get("required", [])]
        return " + ".join(nested if nested else [req])
    kind = schema.get("type")
    bounds = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema:
            bounds.append(f"{sym} {schema[key]}")
    if kind:
        return f"{'an' if str(kind)[0] in 'aeiou' else 'a'} {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
    return "a valid value"


def _message(err: jsonschema.ValidationError) -> tuple[list, str]:
    """(path parts, message) for one schema error."""
    path = list(err.absolute_path)
    v, inst = err.validator, err.instance
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else str(err.validator_value)
        return path + [missing], "required field is missing"
    if v == "additionalProperties":
        known = list((err.schema.get("properties") or {}).keys())
        extra = sorted(set(inst) - set(known)) if isinstance(inst, dict) else []
        msgs = []
        for name in extra:
            close = difflib.get_close_matches(name, known, n=1)
            msgs.append(f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return path, "; ".join(msgs) or err.message
    if v == "type":
        return path, f"expected {_expected(err.schema)}, got {_short(inst)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return path, f"expected {_expected(err.schema)}, got {_short(inst)}"
    if v in ("enum", "const"):
        return path, f"expected {_expected(err.schema)}, got {_short(inst)}"
    if v == "pattern":
        hint = err.schema.get("description") or f"matching {err.validator_value}"
        return path, f"{_short(inst)} is not allowed: {hint}"
    if v == "multipleOf":
        return path, f"expected a multiple of {err.validator_value}, got {_short(inst)}"
    if v in ("anyOf", "oneOf"):
        options = " | ".join(_expected(s) for s in err.validator_value)
        return path, f"expected {options}, got {_short(inst)}"
    if v == "not":
        return path, "field combination not allowed here: " + _short(err.validator_value)
    if v in ("minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "minProperties"):
        return path, err.message.replace(repr(inst), _short(inst)) if len(repr(inst)) > 60 else err.message
    return path, err.message


def schema_problems(document, schema: dict) -> list[str]:
    """Every problem of ``document`` against ``schema``, as ``path: message`` lines."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    lines = set()
    for err in validator.iter_errors(document):
        path, msg = _message(err)
        lines.add((json_path(path), msg))
    return [f"{p}: {m}" for p, m in sorted(lines, key=_sort_key)]


def _sort_key(item: tuple[str, str]):
    path, msg = item
    # numeric sort for indices: shots[10] after shots[9]
    parts = []
    for token in path.replace("]", "").replace("[", ".").split("."):
        parts.append((0, int(token), "") if token.isdigit() else (1, 0, token))
    return parts, msg


def raise_if_problems(problems: list[str], what: str) -> None:
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{what} is invalid ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{listing}",
                          problems=problems)
