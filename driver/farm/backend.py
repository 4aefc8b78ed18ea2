"""Builds a run's render backend: a pool of ComfyUI servers (one ``--server`` or several,
the local ComfyUI the driver starts, or pods it rents with ``--farm runpod --pods N``) or
one RunPod Serverless endpoint (``--endpoint runpod:ID``), preflighted per member,
health-watched, and wrapped in the scheduler's
:class:`~driver.farm.pool_executor.PoolExecutor`. The pool opens when the first job needs
a slot: a run with nothing to render starts nothing.

Everything it starts is entered in the caller's ``ExitStack``: leaving it (success,
failure, Ctrl-C) stops the health watcher, the local ComfyUI and every pod."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from driver.comfy.client import ComfyClient
from driver.errors import ConfigError, PreflightFailed
from driver.progress import LockedReporter
from driver.render.compile import Compiled
from driver.render.executor import ComfyExecutor, server_input_names

from .affinity import Affinity
from .errors import RunPodAuthError
from .opening import Opening
from .pool import Member, ServerPool
from .pool_executor import PoolExecutor
from .redact import install_log_redaction, resolve_api_key
from .runpod_api import PodSpec, RunPodApi
from .runpod_endpoint import DEFAULT_BASE_URL, EndpointClient, parse_endpoint
from .runpod_pods import PROXY_TEMPLATE, PodFleet
from .serverless import Journal, ServerlessExecutor, serverless_input_names
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

    def local_fallback(self) -> bool:
        """True when a local ComfyUI may stand in for the listed server: no pods, no endpoint and
        at most one server listed (a pool of several leaves out the servers that do not answer)."""
        return not (self.endpoint or self.farm or len(self.servers) > 1)

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
@dataclass
class Context:
    """What opening a run's backend needs of the run."""

    run_dir: Path
    run_id: str
    job_timeout_s: float
    request_timeout_s: float
    stack: contextlib.ExitStack
    check_server: Callable[[ComfyClient], None]  # the command's preflight of one server (raises PreflightFailed)
    endpoint_problems: Callable[[], list[str]]    # what an endpoint cannot do for the job (serverless_problems)
    #: the listed URLs -> the URLs to render on, called when the pool opens (the driver starts a
    #: local ComfyUI there when a single listed server does not answer); None: as listed
    resolve_urls: Callable[[list[str]], list[str]] | None = None
    reporter: LockedReporter | None = None
    parts: dict = field(default_factory=dict)     # filled as things start; summarised after they stop


def open_backend(fo: FarmOptions, ctx: Context, *, reporter=None, priorities: dict[str, float] | None = None,
                 models: dict | None = None, affinity: Affinity | None = None,
                 estimates: dict[str, float] | None = None) -> PoolExecutor:
    """The executor for the scheduler. Nothing starts yet: the pool (pods, a local ComfyUI, the
    members' preflight, the health watcher) opens when the first job needs a slot, and
    everything it starts is entered in ``ctx.stack``. ``models`` (job id -> model set),
    ``estimates`` (job id -> seconds) and ``affinity`` (load costs) let each ComfyUI server
    keep its models loaded (not for an endpoint: RunPod picks its workers)."""
    affinity = None if fo.endpoint else affinity
    problems = fo.problems()
    if problems:
        raise ConfigError("farm options: " + "; ".join(problems), problems=problems)
    install_log_redaction()
    ctx.reporter = LockedReporter(reporter) if reporter is not None else None
    ctx.stack.callback(_summarise, ctx.parts)
    if fo.endpoint:
        names, capacity = partial(serverless_input_names, ctx.run_id), fo.endpoint_slots
    else:
        names = partial(server_input_names, ctx.run_id)
        capacity = fo.slots_per_server * (fo.pods if fo.farm else max(1, len(fo.servers)))
    executor = ctx.stack.enter_context(PoolExecutor(
        opener=Opening(partial(_open_pool, fo, ctx, affinity)), input_names=names, threads=capacity + 2,
        job_timeout_s=ctx.job_timeout_s, lost_after_s=fo.lost_after_s, priorities=priorities,
        models=models if affinity is not None else None, estimates=estimates))
    executor.reporter = ctx.reporter  # the scheduler's calls go through the same lock as the servers' events
    ctx.parts["executor"] = executor
    return executor


def _open_pool(fo: FarmOptions, ctx: Context, affinity: Affinity | None = None) -> ServerPool:
    """Start what the options ask for, preflight every member and start the health watcher."""
    fleet = None
    if fo.endpoint:
        members = [serverless_member(fo, run_id=ctx.run_id, run_dir=ctx.run_dir, job_timeout_s=ctx.job_timeout_s)]
        check = partial(_check_endpoint, ctx.endpoint_problems)
    else:
        urls = list(fo.servers)
        if fo.farm == "runpod":
            fleet = ctx.stack.enter_context(PodFleet(
                RunPodApi(resolve_api_key(), base_url=fo.runpod_api_url), prefix=fo.prefix or pod_prefix(ctx.run_id),
                spec=fo.pod, url_template=fo.pod_url_template, ready_timeout_s=fo.pod_ready_timeout_s,
                terminate=fo.terminate, max_cost_usd=fo.max_cost_usd, journal=ctx.run_dir / FARM_DIR / "pods.json",
                poll_s=fo.pod_poll_s, budget_lookahead_s=max(60.0, 2 * fo.health_interval_s)))
            ctx.parts["fleet"] = fleet
            urls += fleet.up(fo.pods)
        elif ctx.resolve_urls is not None:
            urls = ctx.resolve_urls(urls)
        members = [comfy_member(u, run_id=ctx.run_id, job_timeout_s=ctx.job_timeout_s,
                                request_timeout_s=ctx.request_timeout_s, reporter=ctx.reporter,
                                slots=fo.slots_per_server) for u in dict.fromkeys(urls)]
        check = partial(_check_server, ctx.check_server)
    pool = ServerPool(members, health_interval_s=fo.health_interval_s, down_after=fo.down_after,
                      all_down_timeout_s=fo.all_down_timeout_s, rejoin_check=check, affinity=affinity)
    pool.preflight(check)
    if fleet is not None:
        pool.hooks.append(fleet.check_budget)
    ctx.stack.enter_context(pool)
    ctx.parts.update(pool=pool, started=time.monotonic())
    return pool


def _check_server(check_server: Callable[[ComfyClient], None], member: Member) -> None:
    assert isinstance(member.executor, ComfyExecutor)  # every member here is a ComfyUI server
    check_server(member.executor.client)


def _check_endpoint(endpoint_problems: Callable[[], list[str]], member: Member) -> None:
    member.probe()  # reachable, key accepted
    found = endpoint_problems()
    if found:
        raise PreflightFailed(f"the plan cannot run on {member.name}:\n" + "\n".join(f"  - {p}" for p in found),
                              problems=found)


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
