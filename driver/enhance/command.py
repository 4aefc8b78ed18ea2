"""``python -m driver enhance``: probe, plan, render the chunks (on one server, a pool of
servers, pods or a RunPod Serverless endpoint: :mod:`.dispatch`), assemble. Several inputs
are one queue; each has its own work folder, locked for the command
(``driver.lock.folder_lock``). Rerunning the same command reuses the finished chunks.

The work folder (``--work``, default ``<output stem>.enhance`` beside the output) holds
``enhance.json`` (input hash, settings, probe, labels, chunks with their state, server,
attempts, timings and counts, repairs, warnings) and ``chunks/out_NNNNN.nut``, the rendered
lossless chunks (only the interpolated frames without an upscale model: :mod:`.output`; a
chunk with nothing to interpolate is not sent at all). A chunk is recorded done only after
its file is downloaded and its frames counted, so a killed server, a Ctrl-C or a full
disk keeps every finished chunk. A chunk whose source range, settings and output hash
are recorded is never rendered again, whichever machine or server made it: a rerun keeps
the recorded chunk plan while its chunks fit the new backend's limits.

``enhance.json`` versions: 1 (one server, FFV1 chunks in Matroska, every output frame
rendered); 2 was written by two branches with two meanings (each chunk's ``server`` and
``attempts`` and the farm's summary; or NUT chunks, ``rendered`` and ``source_range``);
3 is both. A folder of version 1 or 2 cannot be told apart safely (chunk plans and what a
chunk file holds differ), so its chunks are rendered afresh (logged); a newer version is
refused (:class:`WorkFolderNewer`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from anime_pipeline.core import motion
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.retime import Phase
from anime_pipeline.core.retime import plan as retime_plan
from driver.files import atomic_write_json, now, sha256_file
from driver.render.attempt import Limits

from . import assemble, output
from .errors import WorkFolderNewer
from .limits import check_fits, chunk_limits
from .options import PRESETS, Options, check, clip_frames, fps_out
from .plan import Budget, Chunk, analyse, chunk_file_bytes, make_budget, make_chunks, total_outputs
from .probe import FrameSource, VideoProbe, probe, rgb_array
from .render import ChunkSettings, Windows
from .shared import SharedFrames

log = logging.getLogger(__name__)

MANIFEST = "enhance.json"
MANIFEST_VERSION = 3  # 1: one server; 2: farm fields OR NUT chunks (two branches); 3: both
SECONDS_PER_MEGAPIXEL = 0.08  # rough CPU cost of one interpolated output megapixel (for --dry-run)


def _load_manifest(path: Path, key: dict) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = doc.get("manifest_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and version > MANIFEST_VERSION:
        raise WorkFolderNewer(f"{path} has manifest_version {version}; this driver reads up to {MANIFEST_VERSION}: "
                              "use the driver that wrote it, or another --work folder")
    if version != MANIFEST_VERSION:
        log.info("%s has manifest_version %r (an older driver's): its chunks are rendered afresh", path, version)
        return None
    return doc if doc.get("key") == key else None


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
        self.raw_chunks = False  # source chunks uncompressed (a server on this machine: .dispatch)
        self._shared: SharedFrames[av.VideoFrame] | None = None  # one decode for the chunks and the encode

    # ------------------------------------------------------------------ planning
    def prepare(self, limits: Limits) -> list[Chunk]:
        """Labels (once), then the chunks, sized for ``limits`` (the backend's)."""
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
        on_server = bool(self.opts.model())  # else the final encode resizes
        growth = float(self.fps_out / self.info.fps) * (self.opts.scale ** 2 if on_server else 1)
        sized = chunk_limits(limits, memory_budget_gb=self.opts.memory_budget_gb, growth=growth)
        budget = make_budget(self.info, self.opts.scale, sized.memory, sized.upload, self.opts.max_chunk_frames,
                             chunk_file_bytes(self.info, raw=self.raw_chunks), upscale_on_server=on_server)
        check_fits(str(self.opts.input), budget, sized)
        chunks = self._recorded_plan(budget)
        if chunks is None:
            chunks = make_chunks(labels, n, self.info.fps, self.fps_out, self.opts.retime_mode(), budget,
                                 interpolated_only=not on_server)
        self._merge_chunks(chunks, budget)
        return chunks

    def _recorded_plan(self, budget: Budget) -> list[Chunk] | None:
        """The manifest's chunks when every one fits ``budget`` (a rerun on other servers keeps them)."""
        fields = tuple(Chunk.__dataclass_fields__)
        try:
            chunks = [Chunk(**{k: r[k] for k in fields}) for r in self.doc.get("chunks", [])]
        except KeyError:
            return None
        if not chunks or not all(budget.fits(c.n_src, c.n_rendered) for c in chunks):
            return None
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

    # ------------------------------------------------------------------ rendering (driver.enhance.dispatch)
    def settings(self) -> ChunkSettings:
        return ChunkSettings(self.info.fps, self.fps_out, self.opts.retime_mode(), self.info.rgb_bits,
                             self.out_size(), (self.info.width, self.info.height), self.opts.model(),
                             self.work.name, self.opts.fallback_threshold, PRESETS[self.opts.preset].fast_flow,
                             self.raw_chunks)

    def _source(self) -> FrameSource:
        return FrameSource(self.info, skip_errors=self.opts.skip_errors, start=self.first, stop=self.stop)

    def share_source(self, chunks_upto: int) -> None:
        """Decode the input once for the chunk files (frames up to ``chunks_upto``) and the final
        encode (all): :class:`.shared.SharedFrames`."""
        self._shared = SharedFrames(self._source().decoded(), lambda: self._source().decoded(),
                                    {"chunks": chunks_upto, "encode": None}, _frame_bytes,
                                    name=self.opts.input.name)

    def _decoded(self, consumer: str) -> Iterator[av.VideoFrame]:
        """``consumer``'s share of the input's decoded frames (a stream of its own when nothing is
        shared, or when it asks a second time)."""
        shared = self._shared.take(consumer) if self._shared is not None else None
        return shared if shared is not None else self._source().decoded()

    def windows(self) -> Windows[av.VideoFrame]:
        """The source frames as decoded (:meth:`rgb` converts them), read once in order, for
        chunks asked for in increasing order."""
        return Windows(self._decoded("chunks"))

    def rgb(self, frames: Iterable[av.VideoFrame]) -> Iterator[np.ndarray]:
        """Decoded source frames as the chunks take them (RGB, the tagged matrix, rotation applied)."""
        reformatter = VideoReformatter()
        return (rgb_array(self.info, f, reformatter) for f in frames)

    def record(self, c: Chunk) -> dict:
        return self.doc["chunks"][c.index]

    def done(self, c: Chunk) -> bool:
        r = self.record(c)
        if r.get("status") == "done" and not c.n_rendered:  # only copies: no file
            return True
        path = self.work / (r.get("file") or "-")
        return r.get("status") == "done" and path.is_file() and sha256_file(path) == r.get("sha256")

    # ------------------------------------------------------------------ assembling
    def frames(self, wait=None) -> Iterator[np.ndarray | av.VideoFrame]:
        """The rendered frames in output order: what the final encode gets (``wait(record)``
        returns once that chunk is rendered): RGB arrays, and the copied source frames as
        decoded where the encode takes them so (``assemble.native_copies``)."""
        decoded = self._decoded("encode")
        if assemble.native_copies(self.info, self.out_size()):
            yield from output.output_frames(self.work, self.doc, decoded, wait)
        else:
            yield from output.output_frames(self.work, self.doc, self.rgb(decoded), wait)

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


def _frame_bytes(frame: av.VideoFrame) -> int:
    return sum(p.buffer_size for p in frame.planes)
