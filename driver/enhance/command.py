"""``python -m driver enhance``: probe, plan, render the chunks one after another on one
server, assemble. Rerunning the same command reuses the finished chunks.

The work folder (``--work``, default ``<output stem>.enhance`` beside the output) holds
``enhance.json`` (input hash, settings, probe, labels, chunks with their state, timings
and counts, repairs, warnings) and ``chunks/out_NNNNN.nut``, the rendered lossless
chunks (only the interpolated frames without an upscale model: ``output``; a chunk with
nothing to interpolate is not sent at all). A chunk is recorded done only after its file
is downloaded and its frames counted, so a killed server, a Ctrl-C or a full disk keeps
every finished chunk.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from anime_pipeline.core import motion
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.retime import Phase
from anime_pipeline.core.retime import plan as retime_plan
from driver.comfy.client import ComfyClient
from driver.errors import DiskFull
from driver.files import atomic_write_json, now, sha256_file

from . import assemble, output
from .options import PRESETS, Options, check, clip_frames, fps_out
from .plan import Budget, Chunk, analyse, chunk_file_bytes, make_budget, make_chunks, total_outputs
from .probe import FrameSource, VideoProbe, probe
from .render import ChunkRunner, ChunkSettings, Windows

log = logging.getLogger(__name__)

MANIFEST = "enhance.json"
MANIFEST_VERSION = 2  # 2: lossless chunks in NUT, "rendered" (all | interpolated frames), "source_range"
DEFAULT_MEMORY = 4 << 30  # bytes of frames per chunk when neither the option nor the server says
DEFAULT_UPLOAD = 100 << 20  # ComfyUI's default --max-upload-size
SECONDS_PER_MEGAPIXEL = 0.08  # rough CPU cost of one interpolated output megapixel (for --dry-run)


def _load_manifest(path: Path, key: dict) -> dict | None:
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if doc.get("key") == key and doc.get("manifest_version") == MANIFEST_VERSION else None


def _server_limits(client: ComfyClient | None, opts: Options) -> tuple[int, int]:
    """(memory budget, upload limit) in bytes: the option, else half the server's free memory."""
    upload, memory = DEFAULT_UPLOAD, DEFAULT_MEMORY
    if client is not None:
        upload = int(client.features().get("max_upload_size") or upload)  # {} from an older server
        stats = client.system_stats()
        free = [d.get("vram_free") or 0 for d in stats.get("devices", []) if d.get("type") != "cpu"]
        free = free or [stats.get("system", {}).get("ram_free") or 0]
        if max(free) > 0:
            memory = max(free) // 2
    if opts.memory_budget_gb:
        memory = int(opts.memory_budget_gb * (1 << 30))
    return memory, upload


class Enhance:
    """One run of the command (see the module doc)."""

    def __init__(self, opts: Options):
        check(opts)
        self.opts = opts
        self.work = opts.work_dir()
        self.info: VideoProbe = probe(opts.input)
        self.fps_out = fps_out(opts, self.info)
        self.first, self.stop = clip_frames(opts.clip, self.info)
        self.doc: dict = {}

    # ------------------------------------------------------------------ planning
    def prepare(self, client: ComfyClient | None) -> list[Chunk]:
        self.work.mkdir(parents=True, exist_ok=True)
        key = {"input_sha256": sha256_file(self.opts.input), "settings": self.opts.settings(),
               "fps_out": str(self.fps_out)}
        self.doc = _load_manifest(self.work / MANIFEST, key) or {}
        if not self.doc:
            labels, n, repairs = analyse(self.info, motion.Thresholds(), start=self.first, stop=self.stop,
                                         skip_errors=self.opts.skip_errors)
            self.doc = {"manifest_version": MANIFEST_VERSION, "kind": "enhance", "key": key, "created_at": now(),
                        "input": {"path": str(self.opts.input), **self.info.summary()}, "frames_in": n,
                        "labels": MotionLabels(labels, n).letters(), "repairs": [r.__dict__ for r in repairs],
                        "chunks": [], "warnings": [], "mode": self.opts.retime_mode(),
                        "source_range": [self.first, self.stop],
                        "rendered": output.ALL if self.opts.model() else output.INTERPOLATED}
        n = self.doc["frames_in"]
        labels = MotionLabels.from_letters(self.doc["labels"], n).labels
        memory, upload = _server_limits(client, self.opts)
        on_server = bool(self.opts.model())
        budget = make_budget(self.info, self.opts.scale, memory, upload, self.opts.max_chunk_frames,
                             chunk_file_bytes(self.info), upscale_on_server=on_server)
        chunks = make_chunks(labels, n, self.info.fps, self.fps_out, self.opts.retime_mode(), budget,
                             interpolated_only=not on_server)
        self._merge_chunks(chunks, budget)
        return chunks

    def _merge_chunks(self, chunks: list[Chunk], budget: Budget) -> None:
        old = {c["index"]: c for c in self.doc.get("chunks", [])}
        records = []
        for c in chunks:
            prev = old.get(c.index)
            keep = prev if prev and {k: prev.get(k) for k in c.to_dict()} == c.to_dict() else None
            records.append(keep or {**c.to_dict(), "status": "pending", **self._counts(c)})
        self.doc["chunks"] = records
        self.doc["budget"] = {"memory_bytes": budget.memory, "upload_bytes": budget.upload,
                              "file_frame_bytes": budget.file_frame_bytes, "in_frame_bytes": budget.in_frame_bytes,
                              "out_frame_bytes": budget.out_frame_bytes, "fixed_bytes": budget.fixed_bytes,
                              "largest_chunk_bytes": max(budget.needs(c.n_src, c.n_rendered) for c in chunks)}
        self.doc["frames_out"] = total_outputs(self.doc["frames_in"], self.info.fps, self.fps_out)
        self.save()

    def _counts(self, c: Chunk) -> dict:
        labels = MotionLabels.from_letters(self.doc["labels"][c.src_lo:c.src_hi], c.n_src).labels
        steps = retime_plan(c.n_src, self.info.fps, self.fps_out, labels, self.opts.retime_mode(),
                            Phase(c.src_lo, c.first_out, c.n_out))
        interp = sum(1 for s in steps if not s.is_copy)
        return {"copied": len(steps) - interp, "interpolated": interp}

    def save(self) -> None:
        self.doc["updated_at"] = now()
        atomic_write_json(self.work / MANIFEST, self.doc)

    def out_size(self) -> tuple[int, int]:
        return self.info.width * self.opts.scale, self.info.height * self.opts.scale

    def describe(self, chunks: list[Chunk]) -> str:
        w, h = self.out_size()
        n_in, n_out = self.doc["frames_in"], self.doc["frames_out"]
        interp = sum(c["interpolated"] for c in self.doc["chunks"])
        estimate = interp * w * h / 1e6 * SECONDS_PER_MEGAPIXEL
        lines = [f"{self.opts.input} -> {self.opts.out}",
                 f"  {n_in} frames at {float(self.info.fps):.3f} fps -> {n_out} frames at {float(self.fps_out):.3f} "
                 f"fps, {self.info.width}x{self.info.height} -> {w}x{h}, preset {self.opts.preset} "
                 f"({self.opts.retime_mode()})",
                 f"  labels: {self.doc['labels'].count('c')} cuts, {self.doc['labels'].count('h')} holds, "
                 f"{self.doc['labels'].count('m')} motion; {interp} frames to interpolate",
                 f"  {len(chunks)} chunk(s); estimated render time {estimate:.0f} s (rough, CPU)"]
        if self.opts.scale > 1 and not self.opts.model():
            lines.append(f"  --scale {self.opts.scale} without an upscale model: a lanczos resize")
        lines += [f"  note: {n}" for n in self.info.notes]
        lines += [f"  chunk {c['index']}: out {c['first_out']}..{c['first_out'] + c['n_out'] - 1} "
                  f"from source {c['src_lo']}..{c['src_hi']} ({c['status']})" for c in self.doc["chunks"]]
        return "\n".join(lines)

    # ------------------------------------------------------------------ rendering
    def render(self, client: ComfyClient, chunks: list[Chunk]) -> None:
        todo = [c for c in chunks if not self._done(c)]
        if not todo:
            return
        runner = ChunkRunner(client, ChunkSettings(self.info.fps, self.fps_out, self.opts.retime_mode(),
                                                   self.info.rgb_bits, self.out_size(),
                                                   (self.info.width, self.info.height), self.opts.model(),
                                                   self.work.name, self.opts.fallback_threshold,
                                                   PRESETS[self.opts.preset].fast_flow))
        source = FrameSource(self.info, skip_errors=self.opts.skip_errors, start=self.first, stop=self.stop)
        windows, chunk_dir = Windows(iter(source)), self.work / "chunks"
        chunk_dir.mkdir(exist_ok=True)
        started = time.monotonic()
        for done, c in enumerate(todo):
            record = self.doc["chunks"][c.index]
            if not c.n_rendered:  # only copies: nothing for the server to do
                record.update(status="done", file=None, report={}, wall_s=0.0, finished_at=now())
                self.save()
                continue
            frames = windows.get(c.src_lo, c.src_hi)
            t0 = time.monotonic()
            path, prompt_id, report = runner.render(c, frames, self.doc["labels"][c.src_lo:c.src_hi], chunk_dir,
                                                    on_submit=lambda pid, r=record: self._submitted(r, pid))
            record.update(status="done", file=str(path.relative_to(self.work)), sha256=sha256_file(path),
                          prompt_id=prompt_id, report=report, wall_s=round(time.monotonic() - t0, 3), finished_at=now())
            self.save()
            eta = (time.monotonic() - started) / (done + 1) * (len(todo) - done - 1)
            log.info("chunk %d/%d done (%d frames, %.1f s); ETA %.0f s", c.index + 1, len(chunks), c.n_out,
                     record["wall_s"], eta)

    def _submitted(self, record: dict, prompt_id: str) -> None:
        record.update(status="running", prompt_id=prompt_id)
        self.save()

    def _done(self, c: Chunk) -> bool:
        r = self.doc["chunks"][c.index]
        if r.get("status") == "done" and not c.n_rendered:
            return True
        path = self.work / (r.get("file") or "-")
        return r.get("status") == "done" and path.is_file() and sha256_file(path) == r.get("sha256")

    # ------------------------------------------------------------------ assembling
    def frames(self, wait=None) -> Iterator[np.ndarray]:
        """The rendered frames in output order: what the final encode gets (``wait(record)``
        returns once that chunk is rendered)."""
        source = FrameSource(self.info, skip_errors=self.opts.skip_errors, start=self.first, stop=self.stop)
        yield from output.output_frames(self.work, self.doc, iter(source), wait)

    def encode(self, wait=None) -> tuple[list[str], float]:
        """The final encode (warnings, seconds); ``wait`` as for :meth:`frames`."""
        span = assemble.Span(self.first, self.doc["frames_in"] / self.info.fps)
        t0 = time.monotonic()
        warnings = assemble.encode(self.opts.out, self.info, self.frames(wait), self.doc["frames_out"], self.fps_out,
                                   self.out_size(), span, self.opts.encoding())
        return warnings, time.monotonic() - t0

    def assemble(self, encoded: tuple[list[str], float] | None = None) -> None:
        """Record the final encode (run it here unless ``encoded`` gives its result)."""
        warnings, seconds = encoded or self.encode()
        for w in warnings:
            log.warning("%s", w)
        self.doc["warnings"] = warnings
        self.doc["output"] = {"path": str(self.opts.out), "frames": self.doc["frames_out"],
                              "fps": str(self.fps_out), "encode_s": round(seconds, 3),
                              "finished_at": now()}
        self.save()


def run(opts: Options, connect) -> int:
    """The command: ``connect()`` gives a context manager yielding a :class:`ComfyClient`. A full
    disk anywhere (work folder, chunks, output) is :class:`DiskFull`; finished chunks are kept."""
    try:
        return _run(opts, connect)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = exc.filename or opts.work_dir()
        raise DiskFull(f"no space left on the device writing {where}: free some space and rerun the same "
                       "command (finished chunks are kept)") from None


def _run(opts: Options, connect) -> int:
    job = Enhance(opts)
    if opts.dry_run:
        print(job.describe(job.prepare(None)))
        return 0
    with ExitStack() as stack:
        client = stack.enter_context(connect())
        chunks = job.prepare(client)
        log.info("%s", job.describe(chunks))
        encoder = output.Encoder(job.encode)  # encodes each chunk as soon as it is rendered
        try:
            job.render(client, chunks)
        except BaseException:
            encoder.stop()
            raise
    job.assemble(encoder.result())
    log.info("wrote %s (%d frames at %.3f fps)", opts.out, job.doc["frames_out"], float(job.fps_out))
    return 0
