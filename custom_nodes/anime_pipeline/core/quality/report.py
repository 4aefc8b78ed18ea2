"""The quality report: one JSON document collecting the gate results of a clip.

Format (``schemas/quality_report.schema.json``, documented for the driver in
``docs/quality_report.md``)::

    {"version": 1, "kind": "ap_quality_report", "passed": false, "policy": "stop",
     "label": "shot_010", "node": "42", "summary": "...",
     "frames": {"count": 81, "width": 832, "height": 480},
     "failed_gates": ["temporal"],
     "gates": [{"input": "gate_1", "name": "temporal", "passed": false, "metrics": {...},
                "thresholds": {...}, "failed_frames": [...], "reasons": [...], "notes": [...]}]}

With ``policy = "stop"`` a failing report becomes the message of :class:`QualityStop`:
the one-line summary, then a line ``AP_QUALITY_REPORT:``, then the report JSON
(:func:`parse_stop_message` reads it back from ComfyUI's ``execution_error``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..contracts import GateResult

REPORT_VERSION = 1
REPORT_KIND = "ap_quality_report"
UI_KEY = "ap_quality_report"
MARKER = "AP_QUALITY_REPORT:"
POLICIES = ("report", "stop")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "quality_report.schema.json"


class QualityStop(RuntimeError):
    """Raised by ``AP_QualityReport`` with ``policy = stop`` when a gate failed."""

    def __init__(self, report: dict):
        self.report = report
        super().__init__(stop_message(report))


def _jsonable(value):
    """Plain JSON values (numpy scalars -> Python, non-finite floats -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def gate_entry(slot: str, gate: GateResult) -> dict:
    return _jsonable({"input": slot, **gate.to_dict()})


def result_json(gate: GateResult) -> str:
    """One gate result as JSON (what the gate nodes output next to the result)."""
    return to_json(_jsonable(gate.to_dict()))


def summarise(report: dict) -> str:
    """One line: overall verdict, then each failed gate with its reasons and numbers."""
    gates = report["gates"]
    if not gates:
        return "quality report: no gate connected"
    failed = [g for g in gates if not g["passed"]]
    if not failed:
        return f"quality PASSED: {len(gates)} gate(s) ({', '.join(g['name'] for g in gates)})"
    parts = [f"{g['name']} ({g['input']}): {'; '.join(g['reasons']) or 'failed'}" for g in failed]
    return f"quality FAILED: {len(failed)} of {len(gates)} gate(s) failed: " + " | ".join(parts)


def build_report(gates: dict[str, GateResult], *, n_frames: int, width: int, height: int,
                 policy: str = "report", label: str = "", node: str | None = None) -> dict:
    """Assemble the report from ``{input slot: GateResult}`` (slot order kept)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {list(POLICIES)}, got {policy!r}")
    entries = [gate_entry(slot, g) for slot, g in gates.items()]
    report = {
        "version": REPORT_VERSION,
        "kind": REPORT_KIND,
        "passed": all(e["passed"] for e in entries),
        "policy": policy,
        "label": label,
        "node": node,
        "summary": "",
        "frames": {"count": int(n_frames), "width": int(width), "height": int(height)},
        "failed_gates": [e["name"] for e in entries if not e["passed"]],
        "gates": entries,
    }
    report["summary"] = summarise(report)
    return report


def to_json(report: dict, indent: int | None = None) -> str:
    return json.dumps(report, indent=indent, allow_nan=False, ensure_ascii=False)


def stop_message(report: dict) -> str:
    """Error text for ``policy = stop``: summary line, marker line, full report JSON."""
    return f"{report['summary']}\n{MARKER}\n{to_json(report)}"


def parse_stop_message(text: str) -> dict | None:
    """The report carried by a :func:`stop_message` (e.g. ComfyUI's ``exception_message``),
    or None when the text carries none."""
    head, sep, tail = text.partition(MARKER)
    if not sep:
        return None
    return json.loads(tail.strip())


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report(report: dict) -> None:
    """Raise ``jsonschema.ValidationError`` when ``report`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(report, load_schema())
