"""The commands behind the CLI: ``validate``, ``run`` (and its ``--dry-run``), ``status``.

``run`` wires the layers in stages: prepare (storyboard -> plan, run folder) -> open the
backend (:mod:`driver.backends`: servers chosen in one place, preflight) -> render (the
scheduler) -> finish (episode cut, dailies page, exit code). Every file it writes is
inside the run folder."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .backends import Target, choose_servers, open_executor
from .config import Config, load_config
from .errors import Cancelled, ConfigError, ReviewPending, exit_code_for
from .farm import cli as farm_cli
from .farm.backend import FarmOptions
from .files import atomic_write_json, remove_stale_parts
from .lock import folder_lock
from .outputs.approvals import VIDEO as CLIP
from .outputs.approvals import Approvals
from .outputs.assemble import assemble
from .outputs.dailies import write_dailies
from .outputs.manifest import Manifest
from .progress import Reporter
from .render.compile import Compiler
from .render.executor import Executor
from .render.models import model_set
from .render.scheduler import ALL, RunResult, Scheduler
from .story.plan import KEYFRAMES, STAGES, VIDEO, Plan, make_plan, shot_planner
from .story.storyboard import REPO_ROOT, Storyboard, load_storyboard

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    storyboard: Path
    config: Path | None = None
    out: Path | None = None
    only: list[str] = field(default_factory=list)
    stage: str = ALL
    dry_run: bool = False
    max_retakes: int | None = None
    comfyui: Path | None = None
    cpu: bool = False  # the local ComfyUI runs with --cpu even where a GPU is found
    farm: FarmOptions | None = None  # --server list, RunPod pods or endpoint (driver.farm); see driver.backends


def load_inputs(storyboard: Path, config: Path | None) -> tuple[Storyboard, Config]:
    return load_storyboard(storyboard), load_config(config)


def run_dir_for(sb: Storyboard, config: Config, out: Path | None) -> Path:
    if out is not None:
        return Path(out).resolve()
    root = config.path(config["output_root"]) or Path.cwd()  # output_root is required by the config schema
    return root / f"{sb.project}_EP{sb.episode:03d}"


def server_problems(servers: list[str]) -> list[str]:
    """A server URL that cannot be used, with the reason (``127.0.0.1:8188`` has no scheme,
    ``http://[::1`` no closing bracket, a port out of range)."""
    out = []
    for url in servers:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
        except ValueError as exc:
            out.append(f"server {url!r}: not a URL ({exc})")
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname:
            out.append(f"server {url!r}: give a URL with its scheme and host, e.g. http://127.0.0.1:8188")
    return out


def run_id_for(sb: Storyboard, run_dir: Path) -> str:
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]
    return f"{sb.project}-EP{sb.episode:03d}-{digest}"


def compile_all(plan: Plan, compiler: Compiler, stage: str = ALL) -> list:
    jobs = [j for j in plan.jobs if stage == ALL or j.stage == stage or (stage == VIDEO and j.stage == KEYFRAMES)]
    return [compiler.compile(j) for j in jobs]


# ---------------------------------------------------------------------- validate
def validate(storyboard: Path, config: Path | None = None) -> dict:
    """Storyboard, config, plan and every template binding, without a server."""
    sb, cfg = load_inputs(storyboard, config)
    cfg.gpu_figures  # noqa: B018 - checked even when no shot needs an estimate from it
    plan = make_plan(sb, cfg)
    compile_all(plan, Compiler(sb, cfg, "validate"))
    return {"shots": len(sb.shots), "jobs": len(plan.jobs), "estimate_gpu_s": round(plan.estimate_s, 1)}


# ---------------------------------------------------------------------- dry run
def dry_run(sb: Storyboard, cfg: Config, plan: Plan, run_dir: Path, stage: str = ALL, run_id: str | None = None,
            n_servers: int = 1) -> Path:
    """Write the plan and every compiled workflow under ``<run>/dry-run/``; log the GPU
    time with model loads on ``n_servers`` servers, today's order vs the affinity one."""
    out = run_dir / "dry-run"
    (out / "workflows").mkdir(parents=True, exist_ok=True)
    compiler = Compiler(sb, cfg, run_id or run_id_for(sb, run_dir))
    summary = plan.summary()
    models = {}
    for c in compile_all(plan, compiler, stage):
        atomic_write_json(out / "workflows" / f"{c.job.id}.json", c.prompt)
        models[c.job.id] = model_set(c.prompt)
        entry = next(j for j in summary["jobs"] if j["id"] == c.job.id)
        entry.update(workflow=f"workflows/{c.job.id}.json", workflow_sha256=c.sha256, prompt_id=c.prompt_id,
                     template=compiler.template_path(c.job.template).name)
    atomic_write_json(out / "plan.json", summary)
    farm_cli.log_load_estimates([j for j in plan.jobs if j.id in models], models, cfg, n_servers)
    return out


# ---------------------------------------------------------------------- run
@dataclass
class _Prepared:
    """What the stages of :func:`run` share."""

    opts: RunOptions
    sb: Storyboard
    cfg: Config
    plan: Plan
    run_dir: Path
    retakes: int
    backend: FarmOptions  # the one server list (driver.backends.choose_servers), pods, endpoint
    existing: Manifest | None


def run(opts: RunOptions, reporter: Reporter) -> int:
    """Render (or dry-run) a storyboard; returns the exit code. Stages: prepare (inputs,
    plan, run folder), open the backend, render, finish (cut, dailies, exit code). The run
    folder's lock (:func:`driver.lock.folder_lock`) is held throughout: one driver per folder."""
    with contextlib.ExitStack() as held:
        return _run(opts, reporter, held)


def _run(opts: RunOptions, reporter: Reporter, held: contextlib.ExitStack) -> int:
    prep = _prepare(opts, held)
    if opts.dry_run:
        out = dry_run(prep.sb, prep.cfg, prep.plan, prep.run_dir, opts.stage,
                      prep.existing.run_id if prep.existing else None, max(1, len(prep.backend.servers)))
        log.info("dry run: %d job(s), estimated GPU time %.0f s on %s; plan and workflows in %s",
                 len(prep.plan.jobs), prep.plan.estimate_s, prep.cfg["gpu"], out)
        if opts.farm is not None:
            farm_cli.log_estimates(prep.plan.jobs, prep.backend)  # GPU time and cost per backend
        return 0
    manifest = Manifest.open(prep.run_dir, run_id=run_id_for(prep.sb, prep.run_dir), storyboard=prep.sb,
                             config=prep.cfg, repo=REPO_ROOT)
    manifest.save()
    approvals = Approvals.load(prep.run_dir)
    with contextlib.ExitStack() as stack:
        compiler = Compiler(prep.sb, prep.cfg, manifest.run_id)
        target = Target(prep.cfg, prep.run_dir, manifest.run_id, prep.plan, compiler,
                        compiled=lambda: compile_all(prep.plan, compiler, opts.stage), comfyui=opts.comfyui,
                        cpu=opts.cpu)
        executor = open_executor(prep.backend, target, stack, reporter)
        result = _render(prep, manifest, approvals, compiler, executor, reporter)
    return _finish(prep, manifest, approvals, executor, result)


def _prepare(opts: RunOptions, held: contextlib.ExitStack) -> _Prepared:
    """Inputs, the run folder (locked with ``held``, stale temporary files removed), the plan
    (keyframe rounds read once from an earlier run's manifest)."""
    if opts.stage not in (*STAGES, ALL):
        raise ConfigError(f"--stage must be one of keyframes, video, all; got {opts.stage!r}")
    sb, cfg = load_inputs(opts.storyboard, opts.config)
    retakes = cfg["retakes"]["max_retakes"] if opts.max_retakes is None else opts.max_retakes
    if retakes < 0:
        raise ConfigError(f"--max-retakes must be >= 0, got {retakes}")
    run_dir = run_dir_for(sb, cfg, opts.out)
    backend = choose_servers(opts.farm or FarmOptions(), cfg)
    problems = backend.problems() + server_problems(backend.servers)
    if problems:
        raise ConfigError("farm options: " + "; ".join(problems), problems=problems)
    existing_part = next((p for p in (run_dir, *run_dir.parents) if p.exists()), run_dir)
    if not existing_part.is_dir():
        where = "--out" if opts.out is not None else "output_root"
        raise ConfigError(f"{where}: {existing_part} is a file, not a folder; name a folder for the run "
                          f"({run_dir})")
    held.enter_context(folder_lock(run_dir, command=f"driver run {opts.storyboard}"))
    remove_stale_parts(run_dir)
    existing = Manifest.load(run_dir)
    plan = make_plan(sb, cfg, only=opts.only or None, keyframe_rounds=existing.keyframe_rounds() if existing else {})
    return _Prepared(opts, sb, cfg, plan, run_dir, retakes, backend, existing)


def _render(prep: _Prepared, manifest: Manifest, approvals: Approvals, compiler: Compiler, executor: Executor,
            reporter: Reporter) -> RunResult:
    opts = prep.opts
    scheduler = Scheduler(storyboard=prep.sb, jobs_for=shot_planner(prep.sb, prep.cfg), compiler=compiler,
                          manifest=manifest, executor=executor, approvals=approvals, reporter=reporter,
                          stage=opts.stage, max_retakes=prep.retakes)
    try:
        with reporter:
            return scheduler.run([s for s in prep.sb.shots if not opts.only or s.id in opts.only])
    except KeyboardInterrupt:
        manifest.save()
        raise Cancelled("stopped by the user; rerun the same command to resume") from None
    finally:
        approvals.save()
        write_dailies(prep.sb, manifest, approvals)
        manifest.save()


def _finish(prep: _Prepared, manifest: Manifest, approvals: Approvals, executor: Executor, result: RunResult
            ) -> int:
    """After the backend is closed (pods stopped, costs final): the farm summary, the cut, the dailies page."""
    if executor.summary:
        manifest.data["farm"] = executor.summary  # per server jobs/busy/lost; pods' GPU time and cost
        manifest.save()
    if prep.opts.stage != KEYFRAMES:
        assemble(prep.sb, manifest)
    write_dailies(prep.sb, manifest, approvals)
    manifest.save()
    codes = [f["code"] for f in result.failures.values()]
    if result.pending_review and prep.opts.stage == VIDEO:
        codes.append(ReviewPending.code)
    log.info("run folder %s: %d rendered, %d unchanged, %d failed%s; dailies: %s", prep.run_dir, result.rendered,
             result.skipped, len(result.failures),
             f", {len(result.pending_review)} awaiting review" if result.pending_review else "",
             prep.run_dir / "dailies.html")
    for sid, err in result.failures.items():
        log.error("%s: %s (%s)", sid, err["message"], err["code"])
    return exit_code_for(codes)


# ---------------------------------------------------------------------- status
def status(run_dir: Path) -> dict:
    manifest = Manifest.load(Path(run_dir))
    if manifest is None:
        raise ConfigError(f"{run_dir} holds no run_manifest.json (not a run folder?)")
    approvals = Approvals.load(Path(run_dir))
    shots = {}
    for sid, rec in sorted(manifest.data["shots"].items()):
        attempts = {job_id.removeprefix(f"{sid}-"): len(j.get("attempts", []))
                    for job_id, j in sorted(rec.get("jobs", {}).items())}
        shots[sid] = {"status": rec.get("status"), "approach": rec.get("approach"), "attempts": attempts,
                      "review": approvals.verdict(sid) if approvals.has(sid) else None,
                      "clip_review": approvals.verdict(sid, CLIP) if approvals.has(sid, CLIP) else None,
                      "assets": sorted(rec.get("assets", {})), "error": (rec.get("error") or {}).get("message")}
    cut = (manifest.data.get("episode") or {}).get("cut") or {}
    return {"run_id": manifest.run_id, "storyboard": manifest.data.get("storyboard") or {}, "shots": shots,
            "counts": dict(sorted(Counter(str(s["status"]) for s in shots.values()).items())),
            "cut": cut.get("path"), "placeholders": cut.get("placeholders") or [],
            "updated_at": manifest.data.get("updated_at")}


__all__ = ["RunOptions", "dry_run", "run", "status", "validate"]
