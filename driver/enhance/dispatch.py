"""The chunks of every input rendered over one executor: one server, the farm's pool of
servers or pods (failover: a chunk lost with its server is rendered elsewhere, once) or
a RunPod Serverless endpoint. No scheduler of its own: the chunks are the executor's jobs
(``Executor.map_shots`` runs them, on the pool concurrently, in input order), each held
in a slot (``Executor.slot``) while its file is uploaded, rendered and downloaded.

Bookkeeping is single-threaded as in the storyboard runs: the pool's threads hold its
lock except during network I/O, so reading the source frames (each input once, in
order), writing the source chunk and saving ``enhance.json`` never race. A chunk
recorded ``running`` on a server that is still in the pool is looked up there before
anything is submitted again (a driver killed mid-chunk does not render it twice). A chunk
with nothing to interpolate (``n_rendered == 0``: only copies, placed from the source at
the final encode) is recorded done without a file and never sent.

The source chunk files are written ahead, in input order, on a thread of their own
(:class:`.prefetch.Prefetch`, ``AHEAD`` chunks ahead): the next chunk is ready to upload
the moment the server finishes one, instead of the server waiting while the driver
decodes and writes it (which, with the final encode running beside it, took longer than
the render itself on two cores). For servers on this machine (``Enhance.raw_chunks``) the
source chunks are uncompressed: moving bytes costs nothing there, coding them costs the
CPU the server and the final encode need. The chunk files and the final encode's copies
share one decode of the input (``Enhance.share_source``, :mod:`.shared`; set up before the
encodes start), converted to RGB only for the frames a chunk file holds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from anime_pipeline.core.chunkio import SUFFIX, chunk_tags, write_chunk
from driver.farm.errors import PayloadTooLarge
from driver.files import now, sha256_file
from driver.render.executor import Executor
from driver.render.workflow import load_template

from .command import Enhance
from .errors import ChunkTooLarge
from .jobs import INPUT_ROLE, ROLE, ChunkAttempt, ChunkJob, chunk_attempt, chunk_job
from .plan import Chunk
from .prefetch import Prefetch
from .progress import ChunkProgress
from .render import TEMPLATE, Windows

log = logging.getLogger(__name__)
REPORT_TAG = "AP_REPORT"  # AP_SaveChunk stores the retime's report in the chunk file under this tag


@dataclass
class Task:
    run: Enhance
    chunk: Chunk


@dataclass
class Dispatch:
    executor: Executor
    progress: ChunkProgress
    template: dict = field(default_factory=lambda: load_template(TEMPLATE))
    windows: dict[int, Windows] = field(default_factory=dict)
    prefetch: Prefetch | None = None

    AHEAD = 2  # source chunk files written ahead of the ones rendering
    WRITERS = 4  # threads writing them for remote servers (a pool renders several at once)

    def render(self, runs: Sequence[tuple[Enhance, list[Chunk]]], on_start: Callable[[], None] | None = None) -> int:
        """Render every chunk not done yet, all inputs as one queue; returns how many rendered.
        ``on_start`` is called once every chunk's record says what is left (the final encodes
        start there: a record says done only for a chunk whose file is there)."""
        tasks = [Task(run, c) for run, chunks in runs for c in chunks if not run.done(c)]  # hashes each file once
        for t in tasks:
            rec = t.run.record(t.chunk)
            if not t.chunk.n_rendered:  # only copies: nothing for a server to do
                rec.update(status="done", file=None, report={}, wall_s=0.0, finished_at=now())
            elif rec.get("status") == "done":  # its file is gone or changed
                rec["status"] = "pending"
        for run in {id(t.run): t.run for t in tasks}.values():
            run.save()
        tasks = [t for t in tasks if t.chunk.n_rendered]
        pending = {id(t.run): t.run for t in tasks}.values()
        for run in pending:  # before the encodes start: they share it
            run.share_source(max(t.chunk.src_hi for t in tasks if t.run is run))
        if on_start is not None:
            on_start()
        for run in pending:
            (run.work / "chunks").mkdir(exist_ok=True)
            self.windows[id(run)] = run.windows()
        todo = {(id(t.run), t.chunk.index) for t in tasks}
        self.progress.start([(run, [(c, (id(run), c.index) not in todo) for c in chunks]) for run, chunks in runs])
        # one writer for servers on this machine (they need the cores), more for remote ones
        local = all(t.run.raw_chunks for t in tasks)
        self.prefetch = Prefetch(tasks, self._source_file, self.AHEAD if local else 2 * self.WRITERS,
                                 threads=1 if local else self.WRITERS)
        try:
            self.executor.map_shots(tasks, self._one)
        finally:
            self.prefetch.close()
            self.progress.stop()
        return len(tasks)

    def _source_file(self, task: Task, in_order):
        """The chunk's source frames written as a lossless chunk file (a prefetch thread: every
        input's frames are read once, in order; files are encoded side by side)."""
        run, c = task.run, task.chunk
        src = run.work / "chunks" / f"in_{c.index:05d}{SUFFIX}"
        with in_order:
            decoded = self.windows[id(run)].get(c.src_lo, c.src_hi)
        write_chunk(src, run.rgb(decoded), run.info.fps, run.info.rgb_bits, raw=run.raw_chunks)
        return src

    def _one(self, task: Task) -> None:
        run, c = task.run, task.chunk
        rec = run.record(c)
        assert self.prefetch is not None
        with self.executor.unlocked():  # waits for the prefetch thread, touching no shared state
            src = self.prefetch.take(task)
        job = chunk_job(run.opts.input.name, run.work.name, c)
        t0 = time.monotonic()
        try:
            names = self.executor.upload({INPUT_ROLE: src})  # the pool sends it to whichever server runs it
            with self.executor.slot(job, rec.get("server") if rec.get("status") == "running" else None):
                held = time.monotonic()  # the server's busy time: from its slot (not the wait for one)
                outcome = self._attempt(run, c, rec, job, names[INPUT_ROLE])
                server, busy = self.executor.server, time.monotonic() - held
        except PayloadTooLarge as exc:
            raise ChunkTooLarge(f"{exc}; the chunk plan's size estimate was too low: rerun with --max-chunk-frames "
                                f"{max(2, c.n_src // 2)} or lower", shot=job.shot) from None
        finally:
            src.unlink(missing_ok=True)
        path = outcome.files[ROLE]
        rec.update(status="done", file=str(path.relative_to(run.work)), sha256=sha256_file(path), server=server,
                   report=_report(path), timings=outcome.timings, busy_s=round(busy, 3),
                   wall_s=round(time.monotonic() - t0, 3), finished_at=now())
        run.save()
        self.progress.chunk_done(run, c, server, rec["busy_s"])

    def _attempt(self, run: Enhance, c: Chunk, rec: dict, job: ChunkJob, upload: str):
        letters, settings = run.doc["labels"][c.src_lo:c.src_hi], run.settings()

        def fresh() -> ChunkAttempt:  # a new prompt id, recorded (with its server) before it is submitted
            att = chunk_attempt(self.template, job, c, upload, letters, settings)
            rec.update(status="running", prompt_id=att.prompt_id, server=self.executor.server,
                       attempts=int(rec.get("attempts") or 0) + 1)
            run.save()
            return att

        dest = run.work / "chunks"
        in_flight = rec.get("status") == "running" and rec.get("server") == self.executor.server \
            and bool(rec.get("prompt_id"))
        if in_flight:  # submitted by a driver that stopped: ask its server before submitting again
            att = chunk_attempt(self.template, job, c, upload, letters, settings)
            att = ChunkAttempt(att.job, att.prompt, rec["prompt_id"], att.outputs)
        else:
            att = fresh()
        return self.executor.run_attempt(att, lambda role, ext: dest / f"out_{c.index:05d}.{ext}",
                                         in_flight=in_flight, resubmit=fresh)


def _report(path) -> dict:
    """The retime's counts the chunk file carries (AP_SaveChunk's ``AP_REPORT`` tag); {} without."""
    import json

    text = chunk_tags(path).get(REPORT_TAG)
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {k: doc.get(k) for k in ("frames_in", "frames_out", "copied", "interpolated", "replaced")}
