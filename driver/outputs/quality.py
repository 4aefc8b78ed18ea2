"""Reading ``AP_QualityReport`` results and ranking attempts (pure functions).

The report arrives in ``/history`` (UI output ``ap_quality_report``) or, when the node
stopped the prompt (``policy=stop``), in the execution error after the line
``AP_QUALITY_REPORT:``; its format is the pack's (``docs/quality_report.md``,
``anime_pipeline.core.quality.report``). The driver relies on ``passed`` and, per gate,
``name``, ``passed``, ``metrics`` and ``failed_frames``."""

from __future__ import annotations

import json

from anime_pipeline.core.quality.report import MARKER as REPORT_MARKER
from anime_pipeline.core.quality.report import UI_KEY as REPORT_KEY
from anime_pipeline.core.quality.report import parse_stop_message


def _as_report(value) -> dict | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def report_from_history(entry: dict, node_id: str) -> dict | None:
    ui = (entry.get("outputs") or {}).get(node_id) or {}
    return _as_report(ui.get(REPORT_KEY))


def parse_report_from_error(message: str) -> dict | None:
    """The report JSON an ``AP_QualityReport(policy=stop)`` error carries (ComfyUI may
    append tips after it, e.g. on out-of-memory errors)."""
    try:
        return _as_report(parse_stop_message(message or ""))
    except ValueError:
        tail = (message or "").partition(REPORT_MARKER)[2].strip()
        try:
            return _as_report(json.JSONDecoder().raw_decode(tail)[0])
        except ValueError:
            return None


def gates(report: dict | None) -> list[dict]:
    """The per-gate entries, whatever container the report uses (list or name -> entry)."""
    if not report:
        return []
    g = report.get("gates", report.get("results", []))
    if isinstance(g, dict):
        return [{"name": k, **v} for k, v in g.items() if isinstance(v, dict)]
    return [x for x in g if isinstance(x, dict)]


def passed(report: dict | None) -> bool:
    """A missing report never passes; otherwise its own verdict (or every gate's)."""
    if not report:
        return False
    if isinstance(report.get("passed"), bool):
        return report["passed"]
    return all(g.get("passed") is True for g in gates(report))


def score(report: dict | None) -> float:
    """Ranks attempts when none passes: the fraction of gates passed, then fewer failed
    frames. Higher is better; a missing report scores lowest."""
    entries = gates(report)
    if not report or not entries:
        return 1.0 if passed(report) else -1.0
    frac = sum(1 for g in entries if g.get("passed") is True) / len(entries)
    bad_frames = sum(len(g.get("failed_frames") or []) for g in entries)
    return round(frac - min(bad_frames, 999) / 1e4, 6)


def summary(report: dict | None, max_metrics: int = 4) -> list[dict]:
    """Per gate: name, passed and a few numeric metrics, for logs and the dailies page."""
    out = []
    for g in gates(report):
        metrics = {k: v for k, v in (g.get("metrics") or {}).items() if isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        out.append({"name": g.get("name", "?"), "passed": g.get("passed"),
                    "metrics": dict(list(metrics.items())[:max_metrics])})
    return out
