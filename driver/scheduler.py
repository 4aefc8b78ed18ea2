"""Runs the plan's jobs in dependency order on a backend, resumably, with retakes and
the keyframe review stop.

Resume rule: a job is skipped only when the sha256 of its freshly compiled workflow
(attempt 1, inputs named by their content hash) equals the manifest's, and every output
file it recorded still has its recorded sha256. An attempt recorded as submitted is
looked up on its server before anything is submitted again.

Retakes: a gated job (WAN video with ``AP_QualityReport``) whose report fails is
rendered again with a seed derived from the shot seed and the attempt number, up to
``max_retakes`` times; the first passing attempt becomes the asset; when none passes the
best-scoring one does and the shot fails with ``quality_failed``.

A failure of one shot (rejected prompt, node error, missing output) is recorded and the
run goes on with the others; losing the server stops the run (rerun to resume)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from anime_pipeline.core.naming import asset_name

from . import quality
from .approvals import APPROVE, PENDING, RETAKE, Approvals
from .compile import REPORT, Compiler
from .errors import DriverError, ExecutionFailed, OutputMissing, PromptRejected, QualityFailed
from .executor import Executor, describe_error, record_files
from .manifest import (AWAITING_REVIEW, DONE, FAILED, KEYFRAMES_DONE, PENDING as M_PENDING, SUBMITTED, Manifest,
                       atomic_write_json, file_intact, file_record, now, sha256_file)
from .plan import KEYFRAMES, T2I_SDXL, T2I_UNET, VIDEO, Job
from .storyboard import Shot, Storyboard

log = logging.getLogger(__name__)

GATE_FAILED, QUALITY_FAILED = "gate_failed", "quality_failed"
ALL = "all"
SHOT_ERRORS = (PromptRejected, ExecutionFailed, OutputMissing)  # the run goes on with other shots
KEYFRAME_DIR, CLIP_DIR, ATTEMPT_DIR = "keyframes", "clips", "attempts"


class _ShotFailed(Exception):
    def __init__(self, error: DriverError):
        self.error = error


@dataclass
class RunResult:
    failures: dict[str, dict] = field(default_factory=dict)  # shot id -> error dict
    pending_review: list[str] = field(default_factory=list)
    rendered: int = 0
    skipped: int = 0


class Scheduler:
    def __init__(self, *, storyboard: Storyboard, jobs_for: Callable[[Shot], list[Job]], compiler: Compiler,
                 manifest: Manifest, executor: Executor, approvals: Approvals, reporter, stage: str = ALL,
                 max_retakes: int = 2):
        self.sb, self.jobs_for, self.compiler = storyboard, jobs_for, compiler
        self.manifest, self.executor, self.approvals, self.reporter = manifest, executor, approvals, reporter
        self.stage, self.max_retakes = stage, max_retakes
        self.run_dir = manifest.run_dir
        self.result = RunResult()

    # ------------------------------------------------------------------ shots
    def run(self, shots: list[Shot]) -> RunResult:
        """Every shot, one after the other; concurrently when the executor runs shots
        itself (the farm's ``PoolExecutor.map_shots``: its threads share one lock, so the
        bookkeeping here stays single-threaded)."""
        shots = list(shots)
        self.reporter.start(sum(len(self.jobs_for(s)) for s in shots))
        map_shots = getattr(self.executor, "map_shots", None)
        if map_shots is None:
            for shot in shots:
                self._run_shot(shot)
        else:
            run_reporter = self.reporter
            self.reporter = getattr(self.executor, "reporter", None) or run_reporter  # serialised for the threads
            try:
                map_shots(shots, self._run_shot, key=self._shot_order())
            finally:
                self.reporter = run_reporter
        self.manifest.save()
        return self.result

    def _run_shot(self, shot: Shot) -> None:
        rec = self.manifest.shot(shot.id, shot.approach)
        try:
            self._shot(shot, rec)
        except _ShotFailed as failure:
            err = describe_error(failure.error)
            rec.update(status=FAILED, error=err)
            self.result.failures[shot.id] = err
            log.error("%s failed: %s", shot.id, failure.error)
            self.manifest.save()
        # a shot's final status reaches the disk with the next save (the next job's
        # submission, or the end of the run): after a crash a rerun recomputes it

    def _shot_order(self) -> Callable[[Shot], float]:
        """For concurrent shots: the longest estimated chain of work starts first (the
        executor's job priorities, lowest first); map_shots sorts stably, so storyboard
        order breaks ties."""
        prio = getattr(self.executor, "priorities", None) or {}

        def key(shot: Shot) -> float:
            return min((prio.get(j.id, 0.0) for j in self.jobs_for(shot)), default=0.0)
        return key

    def _shot(self, shot: Shot, rec: dict) -> None:
        if self.stage == VIDEO:
            verdict = self.approvals.verdict(shot.id)
            if verdict == RETAKE:
                self._retake_keyframes(shot, rec)
                return
            if verdict != APPROVE:
                self._hold_for_review(shot, rec, f"keyframes are {verdict}, not approved")
                return
        jobs = self.jobs_for(shot)
        self._record_given_keyframes(shot, jobs)
        changed = self._run_jobs([j for j in jobs if j.stage == KEYFRAMES])
        if self.stage == KEYFRAMES:
            if changed or shot.id not in self.approvals.entries:
                self.approvals.set(shot.id, PENDING)
            rec.update(status=AWAITING_REVIEW, error=None)
            return
        if self.stage == VIDEO and changed:
            self.approvals.set(shot.id, PENDING)
            self._hold_for_review(shot, rec, "its keyframes changed since they were approved")
            return
        rec.update(status=KEYFRAMES_DONE, error=None)
        video_jobs = [j for j in jobs if j.stage == VIDEO]
        self._run_jobs(video_jobs)
        for j in video_jobs:
            record = self.manifest.job_record(shot.id, j.id)
            if record["status"] == QUALITY_FAILED:
                raise _ShotFailed(QualityFailed(
                    f"failed its quality gates on all {len(record['attempts'])} attempt(s); attempt "
                    f"{record['selected_attempt']}, the best-scoring, is kept", shot=shot.id))
        rec.update(status=DONE, error=None)

    def _hold_for_review(self, shot: Shot, rec: dict, why: str) -> None:
        log.info("%s: video held back: %s (see approvals.json)", shot.id, why)
        rec.update(status=AWAITING_REVIEW, error=None)
        self.result.pending_review.append(shot.id)

    def _retake_keyframes(self, shot: Shot, rec: dict) -> None:
        generated = [j for j in self.jobs_for(shot) if j.template in (T2I_SDXL, T2I_UNET)]
        if not generated:
            log.warning("%s: retake asked, but its keyframes are storyboard images; change them in the storyboard",
                        shot.id)
        else:
            rec["keyframe_round"] = rec.get("keyframe_round", 1) + 1
            log.info("%s: re-rendering keyframes (round %d)", shot.id, rec["keyframe_round"])
            self._run_jobs([j for j in self.jobs_for(shot) if j.stage == KEYFRAMES])
        self.approvals.set(shot.id, PENDING)
        self._hold_for_review(shot, rec, "keyframes were re-rendered for review")

    # ------------------------------------------------------------------ jobs
    def _run_jobs(self, jobs: list[Job]) -> bool:
        """Ensure every job is done; True when anything was rendered."""
        rendered = False
        for job in jobs:
            rendered |= self._ensure(job)
        return rendered

    def _input_files(self, job: Job) -> dict[str, Path]:
        files = {}
        assets = self.manifest.shot(job.shot)["assets"]
        for inp in job.inputs:
            if inp.file:
                files[inp.role] = Path(inp.file)
            elif file_intact(self.run_dir, assets.get(inp.role)):
                files[inp.role] = self.run_dir / assets[inp.role]["path"]
            else:
                raise _ShotFailed(OutputMissing(f"{job.id} needs the {inp.role!r} keyframe from {inp.job}, which is "
                                                "missing or changed on disk", shot=job.shot))
        return files

    def _intact(self, job: Job, rec: dict) -> bool:
        """Done, with every asset file as recorded. A quality-failed job counts as done
        unless a higher ``--max-retakes`` allows more attempts than it had."""
        status = rec.get("status")
        if status == QUALITY_FAILED and len(rec["attempts"]) < 1 + self.max_retakes:
            return False
        assets = self.manifest.shot(job.shot)["assets"]
        return status in (DONE, QUALITY_FAILED) and all(file_intact(self.run_dir, assets.get(r)) for r in job.outputs)

    def _ensure(self, job: Job) -> bool:
        rec = self.manifest.job(job.shot, job)
        files = self._input_files(job)
        names = self.executor.input_names(files)
        spec = self.compiler.compile(job, 1, names).sha256
        if rec.get("spec_sha256") == spec and self._intact(job, rec):
            self.reporter.job_skipped(job.id, "unchanged, outputs intact: skipped")
            self.result.skipped += 1
            return False
        if rec.get("spec_sha256") not in (None, spec) and rec["attempts"]:
            rec.setdefault("superseded", []).append({"spec_sha256": rec["spec_sha256"], "attempts": rec["attempts"]})
            rec["attempts"] = []
        rec.update(spec_sha256=spec, status=M_PENDING, selected_attempt=None)
        self.executor.upload(files)
        inputs = [{"role": r, "source": str(p), "sha256": sha256_file(p), "uploaded_as": names[r]}
                  for r, p in files.items()]
        max_attempts = 1 + self.max_retakes if job.gated else 1
        for n in range(1, max_attempts + 1):
            att = self._attempt(job, rec, n, names, inputs)
            if not job.gated or att["passed"]:
                self._select(job, rec, att, DONE)
                return True
        best = max((a for a in rec["attempts"] if a["status"] == GATE_FAILED and a["outputs"]),
                   key=lambda a: a["score"], default=None)
        if best is None:
            rec["status"] = QUALITY_FAILED
            raise _ShotFailed(QualityFailed("every attempt was stopped by its quality gate; no clip to keep",
                                            shot=job.shot))
        self._select(job, rec, best, QUALITY_FAILED)
        return True

    def _attempt(self, job: Job, rec: dict, n: int, names: dict, inputs: list) -> dict:
        compiled = self.compiler.compile(job, n, names)
        attempts = rec["attempts"]
        att = attempts[n - 1] if len(attempts) >= n else None
        if att and att.get("workflow_sha256") == compiled.sha256 and att["status"] in (DONE, GATE_FAILED) \
                and all(file_intact(self.run_dir, f) for f in att["outputs"]):
            return att  # finished in an earlier run
        # a slot of the executor (the farm's pool; a no-op on one server), pinned to the
        # server that had this attempt in flight
        with self.executor.slot(job, att.get("server") if att else None):
            return self._render(job, rec, n, att, compiled, inputs)

    def _render(self, job: Job, rec: dict, n: int, att: dict | None, compiled, inputs: list) -> dict:
        attempts = rec["attempts"]
        in_flight = bool(att and att["status"] == SUBMITTED and att.get("workflow_sha256") == compiled.sha256
                         and att.get("server") == self.executor.server)
        if att is None:
            att = {"attempt": n, "submissions": 0}
            attempts.append(att)
        base = compiled

        def next_submission():
            """The attempt under its next prompt id (``-r2``... after the first), recorded
            on disk before the server hears of it."""
            att["submissions"] = k = att.get("submissions", 0) + 1
            c = dataclasses.replace(base, prompt_id=base.prompt_id + (f"-r{k}" if k > 1 else ""))
            att.update(seed=c.seed, prompt_id=c.prompt_id, server=self.executor.server,
                       client_id=self.executor.client.client_id, workflow_sha256=c.sha256, workflow=c.prompt,
                       inputs=inputs, outputs=[], status=SUBMITTED, error=None, gate_report=None, passed=None,
                       score=None, started_at=now())
            rec["status"] = SUBMITTED
            self.manifest.save()
            return c

        compiled = dataclasses.replace(base, prompt_id=att["prompt_id"]) if in_flight else next_submission()
        self.reporter.job_started(job.id, n, len(compiled.prompt))
        try:
            outcome = self.executor.run_attempt(compiled, self._dest_for(job, n), in_flight=in_flight,
                                                resubmit=next_submission)
        except SHOT_ERRORS as exc:
            exc.shot = exc.shot or job.shot
            att.update(status=FAILED, error=describe_error(exc), finished_at=now())
            rec["status"] = FAILED
            self.reporter.job_finished(job.id, "failed", str(exc))
            raise _ShotFailed(exc) from None
        report_file = None
        if outcome.report is not None:
            path = self._dest_for(job, n)(REPORT, "json")
            atomic_write_json(path, outcome.report)
            report_file = file_record(self.run_dir, path)
        ok = quality.passed(outcome.report) if job.gated else True
        att.update(outputs=record_files(self.run_dir, outcome.files), gate_report=outcome.report,
                   report_file=report_file, passed=ok, score=quality.score(outcome.report) if job.gated else None,
                   timings=outcome.timings, status=DONE if ok else GATE_FAILED, finished_at=now())
        if not ok:
            self.manifest.save()  # a passing attempt is saved once it is selected
        self.result.rendered += 1
        detail = ", ".join(f"{g['name']}={'ok' if g['passed'] else 'FAIL'}" for g in quality.summary(outcome.report))
        self.reporter.job_finished(job.id, "done" if ok else GATE_FAILED, detail)
        return att

    # ------------------------------------------------------------------ files
    def _name(self, job: Job, role: str, ext: str, attempt: int | None = None) -> str:
        shot = self.sb.shot(job.shot)
        return asset_name(self.sb.project, self.sb.episode, shot.scene, shot.take, shot.characters,
                          suffix=role, ext=ext, attempt=attempt)

    def _dest_for(self, job: Job, attempt: int):
        def dest(role: str, ext: str) -> Path:
            path = self.run_dir / ATTEMPT_DIR / self._name(job, role, ext, attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        return dest

    def _place(self, src: Path, dest: Path) -> None:
        """``dest`` becomes a copy of ``src`` (hard link when possible), atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)

    def _record_given_keyframes(self, shot: Shot, jobs: list[Job]) -> None:
        """Copy the storyboard's own keyframe images of this shot into ``keyframes/``
        under the asset names, so the run folder (and its dailies page) is complete."""
        assets = self.manifest.shot(shot.id)["assets"]
        for inp in {i.role: i for j in jobs for i in j.inputs if i.file}.values():
            src = Path(inp.file)
            rec = assets.get(inp.role)
            if rec and rec.get("source") == str(src) and rec["sha256"] == sha256_file(src) \
                    and file_intact(self.run_dir, rec):
                continue
            dest = self.run_dir / KEYFRAME_DIR / asset_name(self.sb.project, self.sb.episode, shot.scene, shot.take,
                                                            shot.characters, suffix=inp.role,
                                                            ext=src.suffix.lstrip(".").lower())
            self._place(src, dest)
            assets[inp.role] = {**file_record(self.run_dir, dest), "source": str(src)}

    def _select(self, job: Job, rec: dict, att: dict, status: str) -> None:
        """Make ``att``'s files the shot's assets (hard link, else copy; atomic)."""
        assets = self.manifest.shot(job.shot)["assets"]
        for f in att["outputs"]:
            src = self.run_dir / f["path"]
            folder = CLIP_DIR if job.stage == VIDEO else KEYFRAME_DIR
            dest = self.run_dir / folder / self._name(job, f["role"], src.suffix.lstrip("."))
            self._place(src, dest)  # the attempt's verified file, so its recorded hash holds
            assets[f["role"]] = {"path": dest.relative_to(self.run_dir).as_posix(), "sha256": f["sha256"],
                                 "bytes": f["bytes"], "attempt": att["attempt"], "job": job.id}
        if att.get("report_file"):
            assets[f"{job.id}:report"] = att["report_file"]
        rec.update(status=status, selected_attempt=att["attempt"])
        self.manifest.save()

