"""What the review page shows, as one JSON document built from the run folder: the
storyboard's shots in order (approach, prompts, characters, notes, duration), each shot's
status, keyframes, clip, every attempt of every job (seed, status, score, playable file,
the gate report with each failing gate's reasons and frames), its verdicts, the episode
cut with its shot markers, and the next command to run. Paths are relative to the run
folder. Used by the review app (live) and by ``dailies.html`` (embedded, read-only)."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from driver.errors import ConfigError
from driver.story.storyboard import Storyboard, load_storyboard

from . import quality
from .approvals import APPROVE, KEYFRAMES, RETAKE, VIDEO, Approvals
from .manifest import Manifest
from .records import AttemptRecord, ShotRecord

log = logging.getLogger(__name__)

KEYFRAME_ROLES = ("strip", "first", "hero", "last")


def key_roles(assets: dict) -> tuple[str, ...]:
    """A keyframed long shot's keyframe roles (``key1``, ``key2``, ...) among ``assets``, in order."""
    return tuple(sorted((r for r in assets if r[3:].isdigit() and r.startswith("key")), key=lambda r: int(r[3:])))
PROMPT_CHARS = 300  # per prompt on the page; the whole prompt is in the attempt's workflow file
VIDEO_EXT = (".mp4", ".webm", ".mov", ".mkv")


def storyboard_of(manifest: Manifest) -> Storyboard | None:
    """The run's storyboard, when it is still where the run found it (the page then
    shows prompts and notes); None otherwise (the manifest alone is shown)."""
    path = Path((manifest.data.get("storyboard") or {}).get("path") or "")
    try:
        return load_storyboard(path) if path.is_file() else None
    except ConfigError as exc:
        log.warning("storyboard %s not readable (%s): shots shown from the manifest only", path, exc)
        return None


def _gates(report: dict | None) -> list[dict]:
    return [{"name": g.get("name", "?"), "input": g.get("input"), "passed": g.get("passed"),
             "reasons": [str(r) for r in g.get("reasons") or []],
             "failed_frames": [f for f in g.get("failed_frames") or [] if isinstance(f, int)],
             "metrics": s["metrics"]} for g, s in zip(quality.gates(report), quality.summary(report), strict=True)]


def _attempt(att: AttemptRecord) -> dict[str, Any]:
    outputs = att.get("outputs") or []
    report = att.get("gate_report")
    return {
        "n": att.get("attempt"), "seed": att.get("seed"), "status": att.get("status"), "score": att.get("score"),
        "passed": att.get("passed"),
        "video": next((f["path"] for f in outputs if f["path"].lower().endswith(VIDEO_EXT)), None),
        "images": [f["path"] for f in outputs if not f["path"].lower().endswith(VIDEO_EXT)],
        "summary": (report or {}).get("summary"), "gates": _gates(report),
        "report_frames": ((report or {}).get("frames") or {}).get("count"),  # frames the gates saw
        "error": (att.get("error") or {}).get("message"),
        "exec_s": (att.get("timings") or {}).get("execution_s"), "finished_at": att.get("finished_at"),
    }


def clip_prompt(text: str) -> str:
    """A prompt as the page shows it: at most PROMPT_CHARS characters."""
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS] + f" … ({len(text):,} characters)"


def _jobs(rec: ShotRecord) -> list[dict]:
    return [{"id": job_id, "stage": job.get("stage"), "status": job.get("status"),
             "selected": job.get("selected_attempt"), "attempts": [_attempt(a) for a in job.get("attempts", [])]}
            for job_id, job in sorted((rec.get("jobs") or {}).items())]


def _shot(sid: str, shot, rec: ShotRecord, approvals: Approvals) -> dict[str, Any]:
    assets = rec.get("assets") or {}
    jobs = _jobs(rec)
    selected = [a for j in jobs if j["stage"] == "video" for a in j["attempts"] if a["n"] == j["selected"]]
    video = assets.get("video")
    workflow = next((a.get("workflow_file") for j in (rec.get("jobs") or {}).values() if j.get("stage") == "video"
                     for a in j.get("attempts", []) if a.get("attempt") == j.get("selected_attempt")), None)
    return {
        "id": sid, "approach": rec.get("approach") or (shot.approach if shot else ""),
        "duration_s": shot.duration_s if shot else None,
        "prompts": {k: clip_prompt(v) for k, v in (shot.prompts if shot else {}).items() if v},
        "workflow": workflow["path"] if workflow else None,  # the selected clip's submitted workflow
        "characters": list(shot.characters) if shot else [], "notes": shot.notes if shot else "",
        "status": rec.get("status", "pending"), "error": (rec.get("error") or {}).get("message"),
        "keyframes": [{"role": r, "path": assets[r]["path"]} for r in KEYFRAME_ROLES + key_roles(assets)
                      if r in assets],
        "video": {"path": video["path"], "attempt": video.get("attempt")} if video else None,
        "jobs": jobs,
        "failing_gates": sorted({g["name"] for a in selected for g in a["gates"] if g["passed"] is False}),
        "verdicts": {k: approvals.entry(sid, k) or None for k in (KEYFRAMES, VIDEO)},
    }


def _cut(manifest: Manifest, shots: list[dict]) -> dict | None:
    cut = (manifest.data.get("episode") or {}).get("cut")
    if not cut:
        return None
    fps = cut.get("fps") or 24
    frames = {sid: n for sid, (_, n) in (cut.get("sources") or {}).items()}
    markers, t = [], 0.0
    for s in shots:
        n = frames.get(s["id"])
        dur = n / fps if n else (s["duration_s"] or 0.0)
        markers.append({"shot": s["id"], "start_s": round(t, 4), "duration_s": round(dur, 4)})
        t += dur
    return {"path": cut["path"], "placeholders": cut.get("placeholders") or [], "markers": markers}


def next_command(manifest: Manifest, shots: list[dict]) -> str | None:
    """``driver run ... --stage video`` when a verdict waits for the driver: approved
    keyframes without a finished clip, or a retake of keyframes or a clip."""
    def waiting(s: dict) -> bool:
        kf, clip = (s["verdicts"][k] or {} for k in (KEYFRAMES, VIDEO))
        return (kf.get("verdict") == APPROVE and s["status"] != "done") or RETAKE in (kf.get("verdict"),
                                                                                      clip.get("verdict"))
    if not any(waiting(s) for s in shots):
        return None
    sb = (manifest.data.get("storyboard") or {}).get("path") or "STORYBOARD"
    cfg = (manifest.data.get("config") or {}).get("source")
    words = ["python", "-m", "driver", "run", sb, *(["--config", cfg] if cfg else []),
             "--out", str(manifest.run_dir), "--stage", "video"]
    return shlex.join(words)


def build(manifest: Manifest, approvals: Approvals, sb: Storyboard | None = None) -> dict[str, Any]:
    recs = manifest.data.get("shots") or {}
    order = [s.id for s in sb.shots] if sb else []
    order += sorted(set(recs) - set(order))
    by_id = {s.id: s for s in sb.shots} if sb else {}
    shots = [_shot(sid, by_id.get(sid), recs.get(sid) or ShotRecord(), approvals) for sid in order]
    st = manifest.data.get("storyboard") or {}
    return {
        "run_id": manifest.run_id, "project": st.get("project"), "episode": st.get("episode"),
        "title": sb.title if sb else "", "updated_at": manifest.data.get("updated_at"),
        "approvals_version": approvals.version, "shots": shots, "cut": _cut(manifest, shots),
        "next_command": next_command(manifest, shots),
    }
