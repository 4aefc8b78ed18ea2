"""The commands behind the CLI: ``validate``, ``run`` (and its ``--dry-run``), ``status``.

``run`` wires the layers: storyboard -> plan -> compile -> server (found, or started
locally) -> preflight -> scheduler -> episode cut + dailies page. Every file it writes
is inside the run folder."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .client import ComfyClient
from .config import Config, load_config
from .errors import Cancelled, ConfigError, DriverError, ReviewPending, ServerUnreachable, exit_code_for
from .farm import cli as farm_cli
from .farm.backend import FarmOptions, open_backend
from .farm.pool_executor import plan_priorities
from .files import atomic_write_json
from .local_server import LocalComfy
from .outputs.approvals import VIDEO as CLIP
from .outputs.approvals import Approvals
from .outputs.assemble import assemble
from .outputs.dailies import write_dailies
from .outputs.manifest import Manifest
from .progress import Reporter
from .render.compile import Compiler
from .render.executor import ComfyExecutor, Executor
from .render.preflight import check as preflight_check
from .render.scheduler import ALL, Scheduler
from .story.plan import KEYFRAMES, STAGES, VIDEO, Plan, make_plan, shot_planner
from .story.storyboard import REPO_ROOT, Storyboard, load_storyboard

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    storyboard: Path
    config: Path | None = None
    servers: list[str] = field(default_factory=list)
    out: Path | None = None
    only: list[str] = field(default_factory=list)
    stage: str = ALL
    dry_run: bool = False
    max_retakes: int | None = None
    comfyui: Path | None = None
    farm: FarmOptions | None = None  # pool of servers, RunPod pods or endpoint (driver.farm)


def load_inputs(storyboard: Path, config: Path | None) -> tuple[Storyboard, Config]:
    return load_storyboard(storyboard), load_config(config)


def run_dir_for(sb: Storyboard, config: Config, out: Path | None) -> Path:
    if out is not None:
        return Path(out).resolve()
    return config.path(config["output_root"]) / f"{sb.project}_EP{sb.episode:03d}"


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
    plan = make_plan(sb, cfg)
    compile_all(plan, Compiler(sb, cfg, "validate"))
    return {"shots": len(sb.shots), "jobs": len(plan.jobs), "estimate_gpu_s": round(plan.estimate_s, 1)}


# ---------------------------------------------------------------------- dry run
def dry_run(sb: Storyboard, cfg: Config, plan: Plan, run_dir: Path, stage: str = ALL, run_id: str | None = None
            ) -> Path:
    """Write the plan and every compiled workflow under ``<run>/dry-run/``."""
    out = run_dir / "dry-run"
    (out / "workflows").mkdir(parents=True, exist_ok=True)
    compiler = Compiler(sb, cfg, run_id or run_id_for(sb, run_dir))
    summary = plan.summary()
    for c in compile_all(plan, compiler, stage):
        atomic_write_json(out / "workflows" / f"{c.job.id}.json", c.prompt)
        entry = next(j for j in summary["jobs"] if j["id"] == c.job.id)
        entry.update(workflow=f"workflows/{c.job.id}.json", workflow_sha256=c.sha256, prompt_id=c.prompt_id,
                     template=compiler.template_path(c.job.template).name)
    atomic_write_json(out / "plan.json", summary)
    return out


# ---------------------------------------------------------------------- run
def _connect(servers: list[str], cfg: Config, comfyui: Path | None, run_dir: Path, stack: contextlib.ExitStack
             ) -> ComfyClient:
    tried = []
    for url in servers:
        client = ComfyClient(url, request_timeout=cfg["timeouts"]["request_s"])
        try:
            client.system_stats()
            return client
        except DriverError as exc:
            tried.append(f"{url} ({exc.__class__.__name__})")
    root = comfyui or os.environ.get("COMFYUI_DIR") or cfg.path(cfg["comfyui_dir"])
    if not root:
        raise ServerUnreachable(
            f"no ComfyUI answers at {', '.join(tried)}. Start one (in your ComfyUI folder: "
            "`python main.py --listen 127.0.0.1 --port 8188`, with the anime_pipeline pack in custom_nodes/), "
            "pass --server URL, or pass --comfyui DIR (or set COMFYUI_DIR) to let the driver start one for this run")
    local = LocalComfy(Path(root), run_dir / ".comfyui", start_timeout=cfg["timeouts"]["server_start_s"],
                       extra_args=tuple(cfg["comfyui_args"]))
    stack.enter_context(local)
    return ComfyClient(local.url, request_timeout=cfg["timeouts"]["request_s"])


def _preflight(client: ComfyClient, plan: Plan, compiler: Compiler, stage: str) -> None:
    compiled = compile_all(plan, compiler, stage)
    lora_files = [(c.job.shot, f) for c in compiled for f in compiler.lora_files(c.job)]
    loras = client.models("loras") if lora_files else None
    preflight_check(compiled, client.object_info(), lora_files=lora_files, server_loras=loras, server=client.url)


def run(opts: RunOptions, reporter: Reporter) -> int:
    """Render (or dry-run) a storyboard; returns the exit code."""
    if opts.stage not in (*STAGES, ALL):
        raise ConfigError(f"--stage must be one of keyframes, video, all; got {opts.stage!r}")
    sb, cfg = load_inputs(opts.storyboard, opts.config)
    retakes = cfg["retakes"]["max_retakes"] if opts.max_retakes is None else opts.max_retakes
    if retakes < 0:
        raise ConfigError(f"--max-retakes must be >= 0, got {retakes}")
    run_dir = run_dir_for(sb, cfg, opts.out)
    existing = Manifest.load(run_dir)
    rounds = existing.keyframe_rounds() if existing else {}
    plan = make_plan(sb, cfg, only=opts.only or None, keyframe_rounds=rounds)
    fo = opts.farm and dataclasses.replace(opts.farm, servers=opts.servers or cfg["servers"])
    if opts.dry_run:
        out = dry_run(sb, cfg, plan, run_dir, opts.stage, existing.run_id if existing else None)
        log.info("dry run: %d job(s), estimated GPU time %.0f s on %s; plan and workflows in %s",
                 len(plan.jobs), plan.estimate_s, cfg["gpu"], out)
        if fo is not None:
            farm_cli.log_estimates(plan.jobs, fo)  # GPU time and cost per backend
        return 0
    manifest = Manifest.open(run_dir, run_id=run_id_for(sb, run_dir), storyboard=sb, config=cfg, repo=REPO_ROOT)
    manifest.save()
    compiler = Compiler(sb, cfg, manifest.run_id)
    approvals = Approvals.load(run_dir)
    shots = [s for s in sb.shots if not opts.only or s.id in opts.only]

    with contextlib.ExitStack() as stack:
        executor: Executor
        if fo is not None and fo.wanted():  # several servers, --farm runpod or --endpoint
            executor = open_backend(
                fo, run_dir=run_dir, run_id=manifest.run_id, job_timeout_s=cfg["timeouts"]["job_s"],
                request_timeout_s=cfg["timeouts"]["request_s"], stack=stack, reporter=reporter,
                check_server=lambda c: _preflight(c, plan, compiler, opts.stage),
                compiled=lambda: compile_all(plan, compiler, opts.stage), priorities=plan_priorities(plan.jobs))
        else:  # one server (found, or started with --comfyui)
            client = _connect(opts.servers or cfg["servers"], cfg, opts.comfyui, run_dir, stack)
            _preflight(client, plan, compiler, opts.stage)
            executor = ComfyExecutor(client, run_id=manifest.run_id, job_timeout=cfg["timeouts"]["job_s"],
                                reporter=reporter)
        scheduler = Scheduler(storyboard=sb, jobs_for=shot_planner(sb, cfg), compiler=compiler, manifest=manifest,
                              executor=executor, approvals=approvals, reporter=reporter, stage=opts.stage,
                              max_retakes=retakes)
        try:
            with reporter:
                result = scheduler.run(shots)
        except KeyboardInterrupt:
            manifest.save()
            raise Cancelled("stopped by the user; rerun the same command to resume") from None
        finally:
            approvals.save()
            write_dailies(sb, manifest, approvals)
            manifest.save()
    if executor.summary:  # after the with: pods stopped, costs final
        manifest.data["farm"] = executor.summary  # per server jobs/busy/lost; pods' GPU time and cost
        manifest.save()
    if opts.stage != KEYFRAMES:
        assemble(sb, manifest)
    write_dailies(sb, manifest, approvals)
    manifest.save()
    codes = [f["code"] for f in result.failures.values()]
    if result.pending_review and opts.stage == VIDEO:
        codes.append(ReviewPending.code)
    log.info("run folder %s: %d rendered, %d unchanged, %d failed%s; dailies: %s", run_dir, result.rendered,
             result.skipped, len(result.failures),
             f", {len(result.pending_review)} awaiting review" if result.pending_review else "",
             run_dir / "dailies.html")
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
    return {"run_id": manifest.run_id, "storyboard": manifest.data["storyboard"], "shots": shots,
            "counts": dict(sorted(Counter(str(s["status"]) for s in shots.values()).items())),
            "cut": cut.get("path"), "placeholders": cut.get("placeholders") or [],
            "updated_at": manifest.data.get("updated_at")}


__all__ = ["RunOptions", "dry_run", "run", "status", "validate"]
