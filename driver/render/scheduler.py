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
run goes on with the others; losing every server of the pool stops the run (rerun to resume)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from driver.errors import DriverError, ExecutionFailed, NeedsNewImage, OutputMissing, PromptRejected, QualityFailed
from driver.files import atomic_write_json, file_intact, file_record, now, sha256_file
from driver.outputs import quality
from driver.outputs.approvals import APPROVE, PENDING, RETAKE, Approvals
from driver.outputs.approvals import VIDEO as CLIP
from driver.outputs.assets import Assets
from driver.outputs.manifest import Manifest
from driver.outputs.records import AttemptRecord, JobRecord, ShotRecord, Status
from driver.story.plan import KEYFRAMES, T2I_SDXL, T2I_UNET, VIDEO, Job
from driver.story.storyboard import Shot, Storyboard

from .compile import REPORT, Compiled, Compiler
from .executor import Executor, describe_error, record_files

log = logging.getLogger(__name__)

ALL = "all"
SHOT_ERRORS = (PromptRejected, ExecutionFailed, OutputMissing)  # the run goes on with other shots

#: a shot's jobs for its keyframe round (``driver.story.plan.shot_planner``)
JobsFor = Callable[[Shot, int], list[Job]]


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
    def __init__(self, *, storyboard: Storyboard, jobs_for: JobsFor, compiler: Compiler, manifest: Manifest,
                 executor: Executor, approvals: Approvals, reporter, stage: str = ALL, max_retakes: int = 2):
        self.sb, self.plan_shot, self.compiler = storyboard, jobs_for, compiler
        self.manifest, self.executor, self.approvals, self.reporter = manifest, executor, approvals, reporter
        self.stage, self.max_retakes = stage, max_retakes
        self.run_dir = manifest.run_dir
        self.assets = Assets(storyboard, manifest)
        self.result = RunResult()
        self._jobs: dict[str, list[Job]] = {}

    def jobs_for(self, shot: Shot) -> list[Job]:
        """The shot's jobs, planned once for its keyframe round (again after a retake)."""
        if shot.id not in self._jobs:
            self._jobs[shot.id] = self.plan_shot(shot, self.manifest.shot(shot.id).get("keyframe_round", 1))
        return self._jobs[shot.id]

    # ------------------------------------------------------------------ shots
    def run(self, shots: list[Shot]) -> RunResult:
        """Every shot, through the executor's ``map_shots`` (concurrently on the farm's
        pool, whose threads share one lock, so the bookkeeping here stays
        single-threaded; one after the other on an executor without threads)."""
        shots = list(shots)
        self.reporter.start(sum(len(self.jobs_for(s)) for s in shots))
        run_reporter = self.reporter
        self.reporter = self.executor.shared_reporter(run_reporter)
        try:
            self.executor.map_shots(shots, self._run_shot, key=self._shot_order())
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
            rec.update({"status": Status.FAILED, "error": err})
            self.result.failures[shot.id] = err
            log.error("%s failed: %s", shot.id, failure.error)
            self.manifest.save()
        # a shot's final status reaches the disk with the next save (the next job's
        # submission, or the end of the run): after a crash a rerun recomputes it

    def _shot_order(self) -> Callable[[Shot], float]:
        """For concurrent shots: the longest estimated chain of work starts first (the
        executor's job priorities, lowest first); map_shots sorts stably, so storyboard
        order breaks ties."""
        prio = self.executor.priorities

        def key(shot: Shot) -> float:
            return min((prio.get(j.id, 0.0) for j in self.jobs_for(shot)), default=0.0)
        return key

    def _shot(self, shot: Shot, rec: ShotRecord) -> None:
        if self.stage == VIDEO:
            verdict = self.approvals.verdict(shot.id)
            if verdict == RETAKE:
                self._retake_keyframes(shot, rec)
                return
            if verdict != APPROVE:
                self._hold_for_review(shot, rec, f"keyframes are {verdict}, not approved")
                return
        jobs = self.jobs_for(shot)
        self.assets.record_given_keyframes(shot, jobs)
        changed = self._run_jobs([j for j in jobs if j.stage == KEYFRAMES])
        if self.stage == KEYFRAMES:
            if changed or shot.id not in self.approvals.entries:
                self.approvals.set(shot.id, PENDING)
            rec.update({"status": Status.AWAITING_REVIEW, "error": None})
            return
        if self.stage == VIDEO and changed:
            self.approvals.set(shot.id, PENDING)
            self._hold_for_review(shot, rec, "its keyframes changed since they were approved")
            return
        rec.update({"status": Status.KEYFRAMES_DONE, "error": None})
        video_jobs = [j for j in jobs if j.stage == VIDEO]
        clip_retake = self.approvals.verdict(shot.id, CLIP) == RETAKE
        if clip_retake:
            log.info("%s: clip retake asked: rendering it again with a new seed", shot.id)
        self._run_jobs(video_jobs, retake=clip_retake)
        if clip_retake:
            self.approvals.set(shot.id, PENDING, CLIP)
        for j in video_jobs:
            record = self.manifest.job(shot.id, j)
            if record["status"] == Status.QUALITY_FAILED:
                raise _ShotFailed(QualityFailed(
                    f"failed its quality gates on all {len(record['attempts'])} attempt(s); attempt "
                    f"{record['selected_attempt']}, the best-scoring, is kept", shot=shot.id))
        rec.update({"status": Status.DONE, "error": None})

    def _hold_for_review(self, shot: Shot, rec: ShotRecord, why: str) -> None:
        log.info("%s: video held back: %s (see approvals.json)", shot.id, why)
        rec.update({"status": Status.AWAITING_REVIEW, "error": None})
        self.result.pending_review.append(shot.id)

    def _retake_keyframes(self, shot: Shot, rec: ShotRecord) -> None:
        """Generated keyframes are rendered again (next round, new seeds) for review;
        storyboard images can only be replaced in the storyboard: until they are, the shot
        fails with ``needs_new_image`` (once replaced, the new image goes to review)."""
        generated = [j for j in self.jobs_for(shot) if j.template in (T2I_SDXL, T2I_UNET)]
        if not generated:
            if not self.assets.record_given_keyframes(shot, self.jobs_for(shot)):
                raise _ShotFailed(NeedsNewImage(
                    f"retake asked for keyframes the storyboard supplies ({', '.join(sorted(shot.keyframes))}); "
                    f"replace the image(s) in {shot.path}.keyframes and run again", shot=shot.id))
        else:
            rec["keyframe_round"] = rec.get("keyframe_round", 1) + 1
            log.info("%s: re-rendering keyframes (round %d)", shot.id, rec["keyframe_round"])
            self._jobs[shot.id] = self.plan_shot(shot, rec["keyframe_round"])
            self._run_jobs([j for j in self.jobs_for(shot) if j.stage == KEYFRAMES])
        self.approvals.set(shot.id, PENDING)
        self._hold_for_review(shot, rec, "new keyframes wait for review")

    # ------------------------------------------------------------------ jobs
    def _run_jobs(self, jobs: list[Job], retake: bool = False) -> bool:
        """Ensure every job is done (``retake``: rendered again after its last attempt);
        True when anything was rendered."""
        rendered = False
        for job in jobs:
            rendered |= self._ensure(job, retake)
        return rendered

    def _intact(self, job: Job, rec: JobRecord) -> bool:
        """Done, with every asset file as recorded. A quality-failed job counts as done
        unless a higher ``--max-retakes`` allows more attempts than it had."""
        status = rec.get("status")
        tried = len(rec["attempts"]) - rec.get("retake_from", 1) + 1
        if status == Status.QUALITY_FAILED and tried < 1 + self.max_retakes:
            return False
        return status in (Status.DONE, Status.QUALITY_FAILED) and self.assets.outputs_intact(job)

    def _ensure(self, job: Job, retake: bool = False) -> bool:
        rec = self.manifest.job(job.shot, job)
        try:
            files = self.assets.input_files(job)
        except OutputMissing as exc:
            raise _ShotFailed(exc) from None
        names = self.executor.input_names(files)
        spec = self.compiler.compile(job, 1, names).sha256
        if rec.get("spec_sha256") == spec and self._intact(job, rec):
            if not retake:
                self.reporter.job_skipped(job.id, "unchanged, outputs intact: skipped")
                self.result.skipped += 1
                return False
            rec["retake_from"] = len(rec["attempts"]) + 1  # a reviewer's retake: old attempts kept
        if rec.get("spec_sha256") not in (None, spec) and rec["attempts"]:
            rec.setdefault("superseded", []).append({"spec_sha256": rec["spec_sha256"], "attempts": rec["attempts"]})
            rec["attempts"] = []
            rec.pop("retake_from", None)
        rec.update({"spec_sha256": spec, "status": Status.PENDING, "selected_attempt": None})
        self.executor.upload(files)
        inputs = [{"role": r, "source": str(p), "sha256": sha256_file(p), "uploaded_as": names[r]}
                  for r, p in files.items()]
        first = rec.get("retake_from", 1)
        max_attempts = 1 + self.max_retakes if job.gated else 1
        for n in range(first, first + max_attempts):
            att = self._attempt(job, rec, n, names, inputs)
            if not job.gated or att["passed"]:
                self.assets.select(job, rec, att, Status.DONE)
                return True
        best = max((a for a in rec["attempts"][first - 1:] if a["status"] == Status.GATE_FAILED and a["outputs"]),
                   key=lambda a: a["score"] or 0.0, default=None)
        if best is None:
            rec["status"] = Status.QUALITY_FAILED
            raise _ShotFailed(QualityFailed("every attempt was stopped by its quality gate; no clip to keep",
                                            shot=job.shot))
        self.assets.select(job, rec, best, Status.QUALITY_FAILED)
        return True

    def _attempt(self, job: Job, rec: JobRecord, n: int, names: dict, inputs: list) -> AttemptRecord:
        compiled = self.compiler.compile(job, n, names)
        attempts = rec["attempts"]
        att = attempts[n - 1] if len(attempts) >= n else None
        finished = (Status.DONE, Status.GATE_FAILED)
        if att and att.get("workflow_sha256") == compiled.sha256 and att["status"] in finished \
                and all(file_intact(self.run_dir, f) for f in att["outputs"]):
            return att  # finished in an earlier run
        # a slot of the executor (the farm's pool, which opens on the first one), pinned to
        # the server that had this attempt in flight
        with self.executor.slot(job, att.get("server") if att else None):
            return self._render(job, rec, n, att, compiled, inputs)

    def _render(self, job: Job, rec: JobRecord, n: int, att: AttemptRecord | None, compiled: Compiled,
                inputs: list) -> AttemptRecord:
        in_flight = bool(att and att["status"] == Status.SUBMITTED and att.get("workflow_sha256") == compiled.sha256
                         and att.get("server") == self.executor.server)
        if att is None:
            att = AttemptRecord(attempt=n, submissions=0)
            rec["attempts"].append(att)
        submit = self._submitter(job, rec, att, compiled, inputs)
        compiled = dataclasses.replace(compiled, prompt_id=att["prompt_id"]) if in_flight else submit()
        self.reporter.job_started(job.id, n, len(compiled.prompt))
        try:
            outcome = self.executor.run_attempt(compiled, self.assets.dest_for(job, n), in_flight=in_flight,
                                                resubmit=submit)
        except SHOT_ERRORS as exc:
            exc.shot = exc.shot or job.shot
            att.update({"status": Status.FAILED, "error": describe_error(exc), "finished_at": now()})
            rec["status"] = Status.FAILED
            self.reporter.job_finished(job.id, "failed", str(exc))
            raise _ShotFailed(exc) from None
        report_file = None
        if outcome.report is not None:
            path = self.assets.dest_for(job, n)(REPORT, "json")
            atomic_write_json(path, outcome.report)
            report_file = file_record(self.run_dir, path)
        ok = quality.passed(outcome.report) if job.gated else True
        att.update({"outputs": record_files(self.run_dir, outcome.files), "gate_report": outcome.report,
                    "report_file": report_file, "passed": ok, "loaders": outcome.loaders,
                    "score": quality.score(outcome.report) if job.gated else None, "timings": outcome.timings,
                    "status": Status.DONE if ok else Status.GATE_FAILED, "finished_at": now()})
        if not ok:
            self.manifest.save()  # a passing attempt is saved once it is selected
        self.result.rendered += 1
        detail = ", ".join(f"{g['name']}={'ok' if g['passed'] else 'FAIL'}" for g in quality.summary(outcome.report))
        self.reporter.job_finished(job.id, "done" if ok else Status.GATE_FAILED.value, detail)
        return att

    def _submitter(self, job: Job, rec: JobRecord, att: AttemptRecord, base: Compiled, inputs: list
                   ) -> Callable[[], Compiled]:
        """``submit()`` gives the attempt under its next prompt id (``-r2``... after the
        first), recorded on disk (the workflow in its own file) before the server hears of it."""
        def submit() -> Compiled:
            att["submissions"] = k = att.get("submissions", 0) + 1
            c = dataclasses.replace(base, prompt_id=base.prompt_id + (f"-r{k}" if k > 1 else ""))
            path = self.manifest.workflow_path(job.id, att["attempt"], c.sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, c.prompt, compact=True)
            att.pop("workflow", None)  # a version-1 attempt kept it inline
            att.update({"seed": c.seed, "prompt_id": c.prompt_id, "server": self.executor.server,
                        "client_id": self.executor.client_id, "workflow_sha256": c.sha256,
                        "workflow_file": file_record(self.run_dir, path), "inputs": inputs, "outputs": [],
                        "status": Status.SUBMITTED, "error": None, "gate_report": None, "passed": None,
                        "score": None, "started_at": now()})
            rec["status"] = Status.SUBMITTED
            self.manifest.save()
            return c
        return submit
