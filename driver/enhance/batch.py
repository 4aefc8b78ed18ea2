"""The enhance command over one or many inputs on the backend ``driver run`` would use
(``driver.backends.choose_servers`` / ``open_site``: ``--server`` repeated, the config's
servers, ``--farm runpod --pods N``, ``--endpoint runpod:ID``).

Stages: probe every input (bad input refused before anything starts) -> lock every work
folder (``driver.lock.folder_lock``: a second command on one is refused naming the
holder) -> open the backend (pods started, every member preflighted with the chunk
workflow) -> plan each input's chunks for the backend's limits -> render all chunks as one
queue (:mod:`.dispatch`), each output's final encode running on its own thread meanwhile
(:class:`.output.Encoder`: it takes the chunks in index order, waiting for each, whichever
server finishes first) -> stop the backend (pods stopped, also on Ctrl-C) -> record each
output. A full disk anywhere (work folder, chunks, output) is ``DiskFull`` (17); finished
chunks are kept."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import threading
from dataclasses import dataclass

from anime_pipeline.core.chunkio import SUFFIX
from driver.backends import Site, choose_servers, open_site
from driver.comfy.client import ComfyClient
from driver.comfy.local import on_this_machine as server_on_this_machine
from driver.config import Config
from driver.errors import DiskFull
from driver.farm import cli as farm_cli
from driver.farm.backend import FarmOptions
from driver.farm.worker_outputs import dropped_outputs
from driver.lock import folder_lock
from driver.progress import Reporter
from driver.render.preflight import check as preflight_check
from driver.render.workflow import load_template

from . import output
from .command import SECONDS_PER_MEGAPIXEL, Enhance
from .dispatch import Dispatch
from .jobs import ChunkAttempt, chunk_attempt, chunk_job
from .limits import planned_limits
from .options import Options
from .plan import Chunk
from .progress import ChunkProgress
from .render import TEMPLATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkEstimate:
    """A chunk as the farm's estimate table reads a job."""

    id: str
    shot: str
    estimate_s: float
    depends_on: tuple[str, ...] = ()


def samples(runs: list[Enhance]) -> list[ChunkAttempt]:
    """One chunk workflow per input, for preflight (node types, the upscale model file)."""
    template, out = load_template(TEMPLATE), []
    for r in runs:
        c = Chunk(0, 0, 1, 0, 1, 0, 1)
        out.append(chunk_attempt(template, chunk_job(r.opts.input.name, r.work.name, c), c, f"preflight{SUFFIX}", "",
                                 r.settings()))
    return out


def run_id(runs: list[Enhance]) -> str:
    if len(runs) == 1:
        return runs[0].work.name
    return "enhance-" + hashlib.sha256("\n".join(str(r.work.resolve()) for r in runs).encode()).hexdigest()[:8]


def estimates(runs: list[Enhance], planned: list[list[Chunk]]) -> list[ChunkEstimate]:
    out = []
    for r, chunks in zip(runs, planned, strict=True):
        w, h = r.out_size()
        for c in chunks:
            interp = r.record(c)["interpolated"]
            out.append(ChunkEstimate(f"{r.work.name}/c{c.index:05d}", r.opts.input.name,
                                     max(1.0, interp * w * h / 1e6 * SECONDS_PER_MEGAPIXEL)))
    return out


def run(opts_list: list[Options], backend: FarmOptions, cfg: Config, console=None) -> int:
    try:
        return _run(opts_list, backend, cfg, console)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = exc.filename or ", ".join(str(o.work_dir()) for o in opts_list)
        raise DiskFull(f"no space left on the device writing {where}: free some space and rerun the same "
                       "command (finished chunks are kept)") from None


def on_this_machine(backend: FarmOptions) -> bool:
    """Every server of ``backend`` is a loopback address (or a local ComfyUI is started): no
    pods, no endpoint."""
    if backend.endpoint or backend.farm:
        return False
    return all(server_on_this_machine(u) for u in backend.servers)


def _run(opts_list: list[Options], backend: FarmOptions, cfg: Config, console=None) -> int:
    runs = [Enhance(o) for o in opts_list]
    backend = choose_servers(backend, cfg)
    local = on_this_machine(backend)
    for r in runs:
        r.raw_chunks = local
    with contextlib.ExitStack() as locks:
        for r in runs:
            locks.enter_context(folder_lock(r.work, command="driver enhance"))
        if any(o.dry_run for o in opts_list):
            planned = [r.prepare(planned_limits(backend)) for r in runs]
            for r, chunks in zip(runs, planned, strict=True):
                print(r.describe(chunks))
            farm_cli.log_estimates(estimates(runs, planned), backend)
            return 0
        progress = ChunkProgress(console)
        with contextlib.ExitStack() as stack:
            executor = open_site(backend, _site(runs, cfg), stack, Reporter())
            limits = executor.limits()
            planned = [r.prepare(limits) for r in runs]
            for r, chunks in zip(runs, planned, strict=True):
                log.info("%s", r.describe(chunks))
            encoders: list[output.Encoder] = []
            try:
                Dispatch(executor, progress).render(list(zip(runs, planned, strict=True)),
                                                    on_start=lambda: encoders.extend(_encoders(runs)))
            except BaseException:
                for e in encoders:
                    e.stop()
                raise
        progress.log_summary()
        for r, encoder in zip(runs, encoders, strict=True):
            r.doc["servers"] = progress.summary()
            if executor.summary:
                r.doc["farm"] = executor.summary  # per server jobs/busy/lost; pods' GPU time and cost
            r.assemble(encoder.result())
            log.info("wrote %s (%d frames at %.3f fps)", r.opts.out, r.doc["frames_out"], float(r.fps_out))
    return 0


ENCODES_AT_ONCE = 2  # final encodes running together (the others wait: chunks render in input order)


def _encoders(runs: list[Enhance]) -> list[output.Encoder]:
    """One final encode per input on its own thread, at most ENCODES_AT_ONCE encoding at a time."""
    turns = threading.BoundedSemaphore(ENCODES_AT_ONCE)

    def encode(run: Enhance, wait):
        while not turns.acquire(timeout=0.05):
            wait({"status": "done"})  # returns at once, raises Stopped when the render stopped
        try:
            return run.encode(wait)
        finally:
            turns.release()

    return [output.Encoder(functools.partial(encode, r)) for r in runs]


def _site(runs: list[Enhance], cfg: Config) -> Site:
    first = runs[0]

    def check(client: ComfyClient) -> None:
        preflight_check(samples(runs), client.object_info(), server=client.url)

    def endpoint_problems() -> list[str]:
        return [p for a in samples(runs) for p in dropped_outputs(a.prompt, a.outputs)]

    return Site(cfg, first.work, run_id(runs), check=check, endpoint_problems=endpoint_problems,
                comfyui=first.opts.comfyui)
