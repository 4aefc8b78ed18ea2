"""Running the join of a long shot (``driver.story.long_shot``), with retakes by segment.

The join job is the gated one: its quality report judges the whole chain (a seam gate at
every join). When it fails, only the segments the failures point at are rendered again
(a new attempt each, with a new seed), then the join runs again:

* a failed seam in a **keyframed** shot: the two segments around it;
* a failed seam in a **continuation** shot: the segment after it, and every later
  segment with it (their first frames are the previous segments' last frames);
* another gate's failed frames: the segments those frames come from (all of them when a
  gate names no frame).

Up to ``max_retakes`` such rounds; the first passing join becomes the shot's clip, else the
best-scoring one does and the shot fails with ``quality_failed``. Resume works per
segment: each segment is its own job with its own attempts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from anime_pipeline.core.segment_chain import SegmentChainPlan
from driver.errors import OutputMissing, QualityFailed
from driver.files import sha256_file
from driver.outputs import quality
from driver.outputs.records import JobRecord, Status
from driver.story.plan import WAN_SEGMENT, Job

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger(__name__)
CONTINUATION = "continuation_flf"


def segments_to_retake(report: dict | None, params: dict) -> list[int]:
    """The segments (0-based) a failed join report points at (see the module docstring)."""
    lengths, seams = params["lengths"], params["seams"]
    plan, count = SegmentChainPlan(tuple(lengths), sum(lengths) - len(lengths) + 1), len(lengths)
    continuation = params["chain"] == CONTINUATION
    bad: set[int] = set()
    for g in quality.gates(report):
        if g.get("passed") is not False:
            continue
        frames = [f for f in g.get("failed_frames") or [] if isinstance(f, int) and not isinstance(f, bool)]
        if g.get("name") == "seam" and frames:
            for s in (f for f in frames if f in seams):
                j = seams.index(s)
                bad |= {j + 1} if continuation else {j, j + 1}
        elif frames:
            bad |= {plan.segment_of(f) for f in frames}
        else:
            bad |= set(range(count))
    if not bad:  # failed without saying where
        bad = set(range(count))
    return list(range(min(bad), count)) if continuation else sorted(bad)


def identity_drift(report: dict | None, lengths: list[int]) -> float | None:
    """Mean identity similarity over the first segment's sampled frames minus over the
    last segment's (positive: the character drifted away along the shot); None without
    an identity gate or with one segment."""
    gate = next((g for g in quality.gates(report) if g.get("name") == "identity"), None)
    sims = ((gate or {}).get("metrics") or {}).get("similarity") or {}
    if len(lengths) < 2 or not sims:
        return None
    plan = SegmentChainPlan(tuple(lengths), sum(lengths) - len(lengths) + 1)
    by_seg: dict[int, list[float]] = {}
    for frame, sim in sims.items():
        by_seg.setdefault(plan.segment_of(int(frame)), []).append(float(sim))
    first, last = by_seg.get(0), by_seg.get(len(lengths) - 1)
    return round(sum(first) / len(first) - sum(last) / len(last), 4) if first and last else None


def _files(s: Scheduler, join: Job) -> dict:
    from .scheduler import _ShotFailed

    try:
        return s.assets.input_files(join)
    except OutputMissing as exc:
        raise _ShotFailed(exc) from None


def _inputs(s: Scheduler, join: Job) -> tuple[dict, list]:
    files = _files(s, join)
    names = s.executor.input_names(files)
    s.executor.upload(files)
    return names, [{"role": r, "source": str(p), "sha256": sha256_file(p), "uploaded_as": names[r]}
                   for r, p in files.items()]


def ensure_join(s: Scheduler, join: Job, retake: bool = False) -> bool:
    """Run ``join`` (its segments already done), retaking segments as its report says."""
    rec = s.manifest.job(join.shot, join)
    names = s.executor.input_names(_files(s, join))
    spec = s.compiler.compile(join, 1, names).sha256
    if rec.get("spec_sha256") == spec and s._intact(join, rec) and not retake:
        s.reporter.job_skipped(join.id, "unchanged, outputs intact: skipped")
        s.result.skipped += 1
        return False
    if rec.get("spec_sha256") not in (None, spec) and rec["attempts"]:
        rec.setdefault("superseded", []).append({"spec_sha256": rec["spec_sha256"], "attempts": rec["attempts"]})
        rec["attempts"] = []
        rec.pop("retake_from", None)
    first = len(rec["attempts"]) + 1
    if first > 1:
        rec["retake_from"] = first
    rec.update({"spec_sha256": spec, "status": Status.PENDING, "selected_attempt": None})
    segments = [j for j in s.jobs_for(s.sb.shot(join.shot)) if j.template == WAN_SEGMENT]
    report = None
    for r in range(1 + s.max_retakes):
        if r:
            redo = segments_to_retake(report, join.params)
            log.info("%s failed its gates: rendering segment(s) %s again", join.id, [k + 1 for k in redo])
            for k, seg in enumerate(segments):
                s._ensure(seg, retake=k in redo)
        names, inputs = _inputs(s, join)
        rec["spec_sha256"] = s.compiler.compile(join, 1, names).sha256
        att = s._attempt(join, rec, first + r, names, inputs)
        report = att.get("gate_report")
        drift = identity_drift(report, join.params["lengths"])
        if drift is not None:
            log.info("%s attempt %d: identity drift first -> last segment %+.4f", join.id, first + r, drift)
        if att["passed"]:
            s.assets.select(join, rec, att, Status.DONE)
            return True
    return keep_best(s, join, rec, first)


def keep_best(s: Scheduler, job: Job, rec: JobRecord, first: int) -> bool:
    """No attempt since ``first`` passed: the best-scoring one becomes the asset and the job is
    ``quality_failed`` (the shot fails when none left a clip)."""
    from .scheduler import _ShotFailed

    best = max((a for a in rec["attempts"][first - 1:] if a["status"] == Status.GATE_FAILED and a["outputs"]),
               key=lambda a: a["score"] or 0.0, default=None)
    if best is None:
        rec["status"] = Status.QUALITY_FAILED
        raise _ShotFailed(QualityFailed("every attempt was stopped by its quality gate; no clip to keep",
                                        shot=job.shot))
    s.assets.select(job, rec, best, Status.QUALITY_FAILED)
    return True
