"""Builds a run's render backend: a pool of ComfyUI servers (``--server`` repeated, or
pods the driver rents with ``--farm runpod --pods N``) or one RunPod Serverless
endpoint (``--endpoint runpod:ID``), preflighted per member, health-watched, and
wrapped in the scheduler's :class:`~driver.farm.pool_executor.PoolExecutor`.

Everything it starts is entered in the caller's ``ExitStack``: leaving it (success,
failure, Ctrl-C) stops the health watcher and stops or terminates every pod."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from driver.comfy.client import ComfyClient
from driver.errors import ConfigError, PreflightFailed
from driver.progress import LockedReporter
from driver.render.compile import Compiled
from driver.render.executor import ComfyExecutor

from .errors import RunPodAuthError
from .pool import Member, ServerPool
from .pool_executor import PoolExecutor
from .redact import install_log_redaction, resolve_api_key
from .runpod_api import PodSpec, RunPodApi
from .runpod_endpoint import DEFAULT_BASE_URL, EndpointClient, parse_endpoint
from .runpod_pods import PROXY_TEMPLATE, PodFleet
from .serverless import Journal, ServerlessExecutor
from .worker_outputs import RESULT_LIMIT, RUN_PAYLOAD_LIMIT, b64_size, dropped_outputs

log = logging.getLogger(__name__)

FARM_DIR = "farm"  # inside the run folder: pod and serverless journals


@dataclass
class FarmOptions:
    servers: list[str] = field(default_factory=list)
    endpoint: str | None = None           # runpod:ENDPOINT_ID
    farm: str | None = None               # "runpod": rent pods for this run
    pods: int = 1
    pod: PodSpec = field(default_factory=PodSpec)
    terminate: bool = False               # terminate pods at the end instead of stopping them
    max_cost_usd: float | None = None
    slots_per_server: int = 1
    endpoint_slots: int = 4
    endpoint_payload_bytes: int = RUN_PAYLOAD_LIMIT  # /run body limit (RunPod's is 10 MB)
    endpoint_bucket: bool = False         # the endpoint sends outputs to S3 (no ~20 MB result limit)
    runpod_api_url: str | None = None     # None: the SDK's default (https://api.runpod.io)
    endpoint_base_url: str = DEFAULT_BASE_URL
    pod_url_template: str = PROXY_TEMPLATE
    pod_ready_timeout_s: float = 1200.0
    pod_poll_s: float = 5.0
    health_interval_s: float = 5.0
    down_after: int = 2
    lost_after_s: float = 30.0
    all_down_timeout_s: float = 300.0
    prefix: str | None = None             # pod name prefix (default: ap-<run id>)

    def wanted(self) -> bool:
        """True when the run needs the farm (else the single-server path is kept)."""
        return bool(self.endpoint or self.farm or len(self.servers) > 1)

    def problems(self) -> list[str]:
        out = []
        if self.endpoint and (self.farm or self.servers):
            out.append("--endpoint renders on RunPod Serverless only: drop --server / --farm")
        if self.farm not in (None, "runpod"):
            out.append(f"--farm must be 'runpod', got {self.farm!r}")
        if self.farm and self.pods < 1:
            out.append(f"--pods must be >= 1, got {self.pods}")
        if self.farm == "runpod":
            out += self.pod.problems()  # no image or template: refused before any API call
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            out.append(f"--max-cost-usd must be > 0, got {self.max_cost_usd}")
        if self.slots_per_server < 1 or self.endpoint_slots < 1:
            out.append("jobs in flight per server / endpoint must be >= 1")
        return out


def pod_prefix(run_id: str) -> str:
    """A pod-name prefix for a run: ``ap-`` + the run id, lower-case, safe characters."""
    return "ap-" + re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")


# ---------------------------------------------------------------------- members
def comfy_member(url: str, *, run_id: str, job_timeout_s: float, request_timeout_s: float, reporter=None,
                 slots: int = 1) -> Member:
    client = ComfyClient(url, request_timeout=request_timeout_s)
    prober = ComfyClient(url, request_timeout=min(10.0, request_timeout_s))
    return Member(url, ComfyExecutor(client, run_id=run_id, job_timeout=job_timeout_s, reporter=reporter),
                  probe=prober.system_stats, capacity=slots)


def serverless_member(fo: FarmOptions, *, run_id: str, run_dir: Path, job_timeout_s: float) -> Member:
    endpoint_id = parse_endpoint(fo.endpoint or "")
    key = resolve_api_key()
    if not key:
        raise RunPodAuthError("no RunPod API key: set RUNPOD_API_KEY, or run `runpod config` to write "
                              "~/.runpod/config.toml")
    endpoint = EndpointClient(endpoint_id, key, base_url=fo.endpoint_base_url)
    executor = ServerlessExecutor(endpoint, run_id=run_id, job_timeout=job_timeout_s,
                                  journal=Journal(run_dir / FARM_DIR / "serverless_jobs.json"),
                                  payload_limit=fo.endpoint_payload_bytes,
                                  result_limit=None if fo.endpoint_bucket else RESULT_LIMIT)
    return Member(executor.server, executor, probe=endpoint.health, capacity=fo.endpoint_slots, kind="serverless")


def serverless_problems(compiled: list[Compiled]) -> list[str]:
    """What worker-comfyui cannot do for this plan: outputs it would drop, bodies over
    the ``/run`` limit (inputs known before the run: the storyboard's images)."""
    problems = []
    for c in compiled:
        where = f"{c.job.shot} {c.job.id}"
        problems += [f"{where}: {p}" for p in dropped_outputs(c.prompt, c.outputs)]
        known = [Path(i.file) for i in c.job.inputs if i.file]
        size = len(json.dumps(c.prompt)) + sum(b64_size(p.stat().st_size) for p in known if p.is_file())
        if size > RUN_PAYLOAD_LIMIT:
            problems.append(f"{where}: the /run body would be ~{size / 1e6:.1f} MB, over RunPod's 10 MB limit "
                            "(inputs travel base64); use smaller keyframes or a pool of pods")
    return problems


# ---------------------------------------------------------------------- the backend
def open_backend(fo: FarmOptions, *, run_dir: Path, run_id: str, job_timeout_s: float, request_timeout_s: float,
                 stack: contextlib.ExitStack, check_server: Callable[[ComfyClient], None],
                 endpoint_problems: Callable[[], list[str]], reporter=None,
                 priorities: dict[str, float] | None = None) -> PoolExecutor:
    """Start what the options ask for and return the executor for the scheduler (or the
    enhance command). ``check_server(client)`` is the command's preflight of one ComfyUI
    server (raises PreflightFailed); ``endpoint_problems()`` lists what an endpoint cannot
    do for the job (e.g. :func:`serverless_problems` of a plan's workflows)."""
    problems = fo.problems()
    if problems:
        raise ConfigError("farm options: " + "; ".join(problems), problems=problems)
    install_log_redaction()
    locked = LockedReporter(reporter) if reporter is not None else None
    parts: dict = {}  # filled as things start; summarised after everything is stopped
    stack.callback(_summarise, parts)
    fleet = None
    if fo.endpoint:
        members = [serverless_member(fo, run_id=run_id, run_dir=run_dir, job_timeout_s=job_timeout_s)]

        def check(member: Member) -> None:
            member.probe()  # reachable, key accepted
            found = endpoint_problems()
            if found:
                raise PreflightFailed(f"the plan cannot run on {member.name}:\n" + "\n".join(f"  - {p}" for p in found),
                                      problems=found)
    else:
        urls = list(fo.servers)
        if fo.farm == "runpod":
            fleet = stack.enter_context(PodFleet(
                RunPodApi(resolve_api_key(), base_url=fo.runpod_api_url), prefix=fo.prefix or pod_prefix(run_id),
                spec=fo.pod, url_template=fo.pod_url_template, ready_timeout_s=fo.pod_ready_timeout_s,
                terminate=fo.terminate, max_cost_usd=fo.max_cost_usd, journal=run_dir / FARM_DIR / "pods.json",
                poll_s=fo.pod_poll_s, budget_lookahead_s=max(60.0, 2 * fo.health_interval_s)))
            parts["fleet"] = fleet
            urls += fleet.up(fo.pods)
        members = [comfy_member(u, run_id=run_id, job_timeout_s=job_timeout_s, request_timeout_s=request_timeout_s,
                                reporter=locked, slots=fo.slots_per_server) for u in dict.fromkeys(urls)]

        def check(member: Member) -> None:
            assert isinstance(member.executor, ComfyExecutor)  # every member here is a ComfyUI server
            check_server(member.executor.client)
    pool = ServerPool(members, health_interval_s=fo.health_interval_s, down_after=fo.down_after,
                      all_down_timeout_s=fo.all_down_timeout_s, rejoin_check=check)
    pool.preflight(check)
    if fleet is not None:
        pool.hooks.append(fleet.check_budget)
    stack.enter_context(pool)
    executor = stack.enter_context(PoolExecutor(pool, job_timeout_s=job_timeout_s, lost_after_s=fo.lost_after_s,
                                                priorities=priorities))
    executor.reporter = locked  # the scheduler's calls go through the same lock as the servers' events
    parts.update(pool=pool, executor=executor, started=time.monotonic())
    return executor


def _summarise(parts: dict) -> None:
    """After the pool and the pods are stopped: log what each server did and what the
    pods cost, and leave it on ``executor.summary`` for the manifest."""
    pool, executor, fleet = parts.get("pool"), parts.get("executor"), parts.get("fleet")
    summary: dict = {}
    if pool is not None:
        wall = max(1e-9, time.monotonic() - parts["started"])
        summary["servers"] = pool.summary()
        summary["events"] = list(pool.messages)
        for s in summary["servers"]:
            log.info("farm: %-40s %-8s %3d job(s), busy %6.0f s (%3.0f%%)%s", s["server"], s["state"], s["jobs"],
                     s["busy_s"], 100.0 * s["busy_s"] / (wall * s["slots"]),
                     f", {s['lost']} lost" if s["lost"] else "")
    if fleet is not None:
        summary["pods"] = fleet.summary()
    if executor is not None:
        executor.summary = summary
