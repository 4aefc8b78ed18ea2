"""JSON Schema validation with errors a producer can act on: every problem is one line
``<json path>: <what was expected>``, e.g. ``shots[3].duration_s: expected a number > 0, got -2``.

All problems of a document are reported at once, sorted by path."""

from __future__ import annotations

import difflib
import json
import math
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


#: JSON Schema's ``integer`` without the floats that happen to be whole (``episode: 1.0``
#: would otherwise pass and break ``{:03d}`` later); booleans are no numbers either.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many({
    "integer": lambda _c, v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda _c, v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
})
_Validator = jsonschema.validators.extend(Draft202012Validator, type_checker=_TYPES)

#: Deeper documents are refused before validation (no storyboard, config, approvals or
#: manifest nests anywhere near this; 100,000 levels would exhaust the recursion limit).
MAX_DEPTH = 64
#: ... and documents of more values (a YAML alias bomb expands to billions).
MAX_VALUES = 1_000_000


def document_problems(document, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> list[str]:
    """What no document of ours may hold, wherever it sits: NaN or an infinity (``NaN``,
    ``Infinity`` in JSON, ``.nan`` in YAML), a string that is not valid Unicode (a lone
    surrogate from ``"\\ud800"``), nesting deeper than ``max_depth`` and more than ``max_values``
    values (YAML aliases counted at each use). Iterative, so a
    deep document cannot exhaust the stack; one line per problem with its JSON path."""
    problems: list[str] = []
    stack: list[tuple[list, object]] = [([], document)]
    seen = 0
    while stack and len(problems) < 50:
        path, value = stack.pop()
        seen += 1
        if seen > max_values:
            problems.append(f"$: more than {max_values:,} values (aliases repeating a block, as in a YAML alias "
                            "bomb?); refused")
            break
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{json_path(path)}: {value} is not a number; give a finite number")
        elif isinstance(value, str) and _bad_text(value):
            problems.append(f"{json_path(path)}: not valid Unicode text (a lone surrogate such as \\ud800)")
        elif isinstance(value, (dict, list)):
            if len(path) >= max_depth:
                problems.append(f"{json_path(path[:8])}...: nested deeper than {max_depth} levels")
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str) and _bad_text(key):
                    problems.append(f"{json_path(path)}: a key is not valid Unicode text")
                stack.append(([*path, key], child))
    return sorted(problems, key=lambda line: _sort_key((line.split(": ", 1)[0], line)))


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(raw: bytes | str, where: str):
    """``raw`` parsed as JSON, or ConfigError naming ``where`` and the cause (invalid JSON,
    not UTF-8, nested too deep for the parser); non-finite numbers parse and are refused by
    :func:`document_problems`."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to read (more than {MAX_DEPTH} levels are refused)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None


def schema_problems(document, schema: dict) -> list[str]:
    """Every problem of ``document`` against ``schema``, as ``path: message`` lines
    (:func:`document_problems` first: a document with those is not validated further)."""
    early = document_problems(document)
    if early:
        return early
    validator = _Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
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
