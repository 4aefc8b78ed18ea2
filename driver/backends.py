"""Where a run renders, decided in one place.

The server list has one meaning: the pool the run renders on. It comes from ``--server``
(repeated), else, unless the run rents pods (``--farm runpod``) or uses an endpoint
(``--endpoint``), which never inherit it, from the config's ``servers``. Two or more
servers, pods or an endpoint render through the farm's pool (failover, per-member
preflight); one server renders on its own, and with none answering (or none listed) the
local or managed ComfyUI (``--comfyui``, ``COMFYUI_DIR``, the config's ``local_comfyui``)
is started for the run, only once a job needs rendering.

``driver run`` and ``driver enhance`` both open their backend here: a :class:`Site` says
where the command keeps its files and what it checks on each server."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from .comfy.client import ComfyClient
from .comfy.finder import find_comfyui
from .comfy.local import LocalComfy
from .config import Config
from .errors import ComfyUINotInstalled, DriverError, ServerUnreachable
from .farm.backend import FarmOptions, open_backend, serverless_problems
from .farm.dispatch import plan_priorities
from .render.compile import Compiled, Compiler
from .render.executor import ComfyExecutor, Executor
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
    """The storyboard run's executor; everything it starts is stopped with ``stack``."""
    site = Site(target.cfg, target.run_dir, target.run_id,
                check=lambda c: preflight(c, target.compiled(), target.compiler),
                endpoint_problems=lambda: serverless_problems(target.compiled()),
                priorities=plan_priorities(target.plan.jobs), comfyui=target.comfyui, cpu=target.cpu)
    return open_site(backend, site, stack, reporter)


def open_site(backend: FarmOptions, site: Site, stack: contextlib.ExitStack, reporter) -> Executor:
    """A command's executor: the farm's pool for several servers, pods or an endpoint, else
    one server (connected, or started locally, when the first job needs it)."""
    cfg = site.cfg
    if backend.wanted():  # several servers, --farm runpod or --endpoint
        return open_backend(
            backend, run_dir=site.run_dir, run_id=site.run_id, job_timeout_s=cfg["timeouts"]["job_s"],
            request_timeout_s=cfg["timeouts"]["request_s"], stack=stack, reporter=reporter,
            check_server=site.check, endpoint_problems=site.endpoint_problems, priorities=site.priorities)

    def connect() -> ComfyClient:  # one server, found or started locally, once a job needs rendering
        client = _connect(backend.servers[0] if backend.servers else None, site, stack)
        site.check(client)
        return client

    return ComfyExecutor(connect=connect, run_id=site.run_id, job_timeout=cfg["timeouts"]["job_s"],
                         reporter=reporter)


def _connect(url: str | None, target: Site, stack: contextlib.ExitStack) -> ComfyClient:
    """The server at ``url`` if it answers, else a local ComfyUI started for this run (stopped with
    ``stack``): ``--comfyui``, ``COMFYUI_DIR``, the config's ``local_comfyui`` or the managed install."""
    cfg = target.cfg
    tried = "no server is configured"
    if url is not None:
        client = ComfyClient(url, request_timeout=cfg["timeouts"]["request_s"])
        try:
            client.system_stats()
            return client
        except DriverError as exc:
            tried = f"no ComfyUI answers at {url} ({exc.__class__.__name__})"
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
    return ComfyClient(local.url, request_timeout=cfg["timeouts"]["request_s"])
