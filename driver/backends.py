"""Where a run renders, decided in one place.

The server list has one meaning: the pool the run renders on. It comes from ``--server``
(repeated), else, unless the run rents pods (``--farm runpod``) or uses an endpoint
(``--endpoint``), which never inherit it, from the config's ``servers``. Every run renders
through the farm's pool (one server is a pool of one: per-member preflight, health
checks, a lost job requeued when its server answers again or on another one). When a
single listed server does not answer (or none is listed), the pool's one member is the
local or managed ComfyUI (``--comfyui``, ``COMFYUI_DIR``, the config's ``local_comfyui``)
started for the run. The pool opens only once a job needs rendering: a rerun with
nothing to render starts nothing and connects nowhere.

``driver run`` and ``driver enhance`` both open their backend here: a :class:`Site` says
where the command keeps its files and what it checks on each server."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .comfy.client import ComfyClient
from .comfy.finder import find_comfyui
from .comfy.local import LocalComfy
from .config import Config
from .errors import ComfyUINotInstalled, DriverError, ServerUnreachable
from .farm import cli as farm_cli
from .farm.backend import Context, FarmOptions, open_backend, serverless_problems
from .farm.priorities import plan_priorities
from .render.compile import Compiled, Compiler
from .render.executor import Executor
from .render.models import model_set
from .render.preflight import check as preflight_check
from .story.plan import Plan

log = logging.getLogger(__name__)


def choose_servers(backend: FarmOptions, cfg: Config) -> FarmOptions:
    """``backend`` with its server list filled in (see the module docstring)."""
    if backend.servers or backend.endpoint or backend.farm:
        return backend
    return dataclasses.replace(backend, servers=list(cfg["servers"]))


def preflight(client: ComfyClient, compiled: list[Compiled], compiler: Compiler) -> None:
    """The plan against one server: node types, combo values, character LoRA files."""
    lora_files = [(c.job.shot, f) for c in compiled for f in compiler.lora_files(c.job)]
    loras = client.models("loras") if lora_files else None
    preflight_check(compiled, client.object_info(), lora_files=lora_files, server_loras=loras, server=client.url)


@dataclasses.dataclass
class Site:
    """What :func:`open_site` needs of a command: its folder (journals, a local ComfyUI's
    files), the run id (upload folder, pod names), the checks of a ComfyUI server and of an
    endpoint, and the job priorities for the pool."""

    cfg: Config
    run_dir: Path
    run_id: str
    check: Callable[[ComfyClient], None]
    endpoint_problems: Callable[[], list[str]]
    priorities: dict[str, float] = dataclasses.field(default_factory=dict)
    comfyui: Path | None = None
    cpu: bool = False
    models: dict[str, Any] = dataclasses.field(default_factory=dict)  # job id -> model set (pool affinity)
    estimates: dict[str, float] = dataclasses.field(default_factory=dict)  # job id -> seconds (pool affinity)
    affinity: Any = None  # load costs (driver.farm.cli.load_costs); None: no affinity


@dataclasses.dataclass
class Target:
    """What :func:`open_executor` needs of the run."""

    cfg: Config
    run_dir: Path
    run_id: str
    plan: Plan
    compiler: Compiler
    compiled: Callable[[], list[Compiled]]  # the plan's workflows (for the stage being run)
    comfyui: Path | None = None
    cpu: bool = False


def open_executor(backend: FarmOptions, target: Target, stack: contextlib.ExitStack, reporter) -> Executor:
    """The storyboard run's executor (the farm's pool, opened on the first job that renders);
    everything it starts is stopped with ``stack``."""
    site = Site(target.cfg, target.run_dir, target.run_id,
                check=lambda c: preflight(c, target.compiled(), target.compiler),
                endpoint_problems=lambda: serverless_problems(target.compiled()),
                priorities=plan_priorities(target.plan.jobs), comfyui=target.comfyui, cpu=target.cpu,
                models={c.job.id: model_set(c.prompt) for c in target.compiled()},
                estimates={j.id: j.estimate_s for j in target.plan.jobs if j.estimate_s is not None},
                affinity=farm_cli.load_costs(target.cfg))
    return open_site(backend, site, stack, reporter)

def open_site(backend: FarmOptions, site: Site, stack: contextlib.ExitStack, reporter) -> Executor:
    """A command's executor: the farm's pool over the servers, pods or endpoint ``backend``
    names (one server: a pool of one, or the local ComfyUI), opened on the first job."""
    cfg = site.cfg
    ctx = Context(site.run_dir, site.run_id, job_timeout_s=cfg["timeouts"]["job_s"],
                  request_timeout_s=cfg["timeouts"]["request_s"], stack=stack, check_server=site.check,
                  endpoint_problems=site.endpoint_problems,
                  resolve_urls=partial(_one_or_local, site, stack) if backend.local_fallback() else None)
    return open_backend(backend, ctx, reporter=reporter, priorities=site.priorities, affinity=site.affinity,
                        models=site.models, estimates=site.estimates)


def _one_or_local(target: Site, stack: contextlib.ExitStack, urls: list[str]) -> list[str]:
    """The one listed server if it answers, else a local ComfyUI started for this run (stopped with
    ``stack``): ``--comfyui``, ``COMFYUI_DIR``, the config's ``local_comfyui`` or the managed install."""
    cfg = target.cfg
    tried = "no server is configured"
    if urls:
        try:
            ComfyClient(urls[0], request_timeout=cfg["timeouts"]["request_s"]).system_stats()
            return urls
        except DriverError as exc:
            tried = f"no ComfyUI answers at {urls[0]} ({exc.__class__.__name__})"
    try:
        install = find_comfyui(target.comfyui, cfg.local_comfyui())
    except ComfyUINotInstalled as exc:
        raise ComfyUINotInstalled(f"{tried}, and {exc}") from None
    if install is None:
        raise ServerUnreachable(
            f"{tried} and the config says local_comfyui: none. Start one, "
            "pass --server URL, or let the driver start one (local_comfyui: managed, after "
            "`python -m driver comfyui install`)")
    log.info("%s: starting the %s one for this run", tried, install.origin)
    local = LocalComfy(install, target.run_dir / ".comfyui", start_timeout=cfg["timeouts"]["server_start_s"],
                       extra_args=tuple(cfg["comfyui_args"]), force_cpu=target.cpu)
    stack.enter_context(local)
    return [local.url]
