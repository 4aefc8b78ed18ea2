"""A chunk's ComfyUI workflow, from ``workflows/enhance_chunk.api.json``, with lossless chunk
files both ways (``AP_LoadChunk`` / ``AP_SaveChunk``: Ut Video or FFV1 in NUT, 8 or 16
bits); the chunks run as jobs of the driver's executors (:mod:`.jobs`, :mod:`.dispatch`).

The template is bound by node title (``driver.render.workflow``): ``Chunk In``,
``Motion Gate`` (the whole input's labels given), ``Retime`` (rates, mode and the chunk's
phase; without an upscale model it returns only the interpolated frames, the copies are
placed from the source at the final encode, which also resizes), ``Upscale Model`` +
``Upscale`` (removed when no model is configured), ``Resize`` (to the exact output size;
removed without a model) and ``Chunk Out``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Generic, TypeVar

from anime_pipeline.core.retime import GUARD_THRESHOLD
from driver.errors import OutputMissing
from driver.render.workflow import Binder, find

from .plan import Chunk

F = TypeVar("F")  # a source frame: an RGB array, or a decoded av.VideoFrame

TEMPLATE = Path(__file__).resolve().parents[2] / "workflows" / "enhance_chunk.api.json"


@dataclass(frozen=True)
class ChunkSettings:
    """What every chunk of a run shares."""

    fps_in: Fraction
    fps_out: Fraction
    mode: str  # keep_holds | smooth
    bits: int
    out_size: tuple[int, int]  # (width, height)
    in_size: tuple[int, int]
    upscale_model: str | None = None
    run_id: str = "run"
    fallback: float = GUARD_THRESHOLD  # bad mid-frame fallback threshold (0 = off)
    fast_flow: bool = False  # one flow estimate instead of two (the fast preset)
    raw_chunks: bool = False  # the server returns its chunk uncompressed (a server on this machine)

    @property
    def interpolated_only(self) -> bool:
        """Without an upscale model the server returns only the interpolated frames."""
        return not self.upscale_model


def bind(template: dict, chunk: Chunk, name: str, letters: str, s: ChunkSettings) -> dict:
    """The chunk's workflow: ``name`` is the uploaded chunk, ``letters`` its frames' labels."""
    b = Binder(template, TEMPLATE.name)
    b.set("Chunk In", chunk=name)
    b.set("Retime", fps_in=float(s.fps_in), fps_out=float(s.fps_out), mode=s.mode)
    if s.upscale_model:
        b.set("Upscale Model", model_name=s.upscale_model)
    else:
        b.bypass("Upscale", {0: "image"})
        b.bypass("Upscale Model")
    if not s.upscale_model:  # the final encode resizes
        b.bypass("Resize", {0: "image"})
    else:
        b.set("Resize", width=s.out_size[0], height=s.out_size[1])
    b.set("Chunk Out", bits=str(s.bits), filename_prefix=f"ap_enhance/{s.run_id}/c{chunk.index:05d}")
    b.require("Motion Gate", "Retime", "Chunk Out")
    prompt = b.result()
    # socket-only inputs (no widget, so absent from the template): set on the titled nodes
    _add(prompt, "Motion Gate", labels_given=letters)
    if s.raw_chunks:
        _add(prompt, "Chunk Out", raw=True)
    _add(prompt, "Retime", frame_offset=chunk.src_lo, output_offset=chunk.first_out, max_outputs=chunk.n_out,
         fallback_threshold=s.fallback, **({"interpolated_only": True} if s.interpolated_only else {}),
         **({"fast_flow": True} if s.fast_flow else {}))
    return prompt


def _add(prompt: dict, title: str, **inputs) -> None:
    for nid in find(prompt, title):
        prompt[nid]["inputs"].update(inputs)


class Windows(Generic[F]):
    """Consecutive, possibly overlapping ranges of one sequential frame stream (chunks ask
    for ``lo .. hi`` in increasing order; frames already passed are kept only while a later
    range may still need them)."""

    def __init__(self, frames: Iterator[F]):
        self.frames = frames
        self.buffer: deque[tuple[int, F]] = deque()
        self.next = 0

    def get(self, lo: int, hi: int) -> list[F]:
        while self.buffer and self.buffer[0][0] < lo:
            self.buffer.popleft()
        while self.next <= hi:
            frame = next(self.frames, None)
            if frame is None:
                raise OutputMissing(f"the input ended at frame {self.next}, before frame {hi} of the plan")
            if self.next >= lo:
                self.buffer.append((self.next, frame))
            self.next += 1
        return [f for i, f in self.buffer if lo <= i <= hi]
