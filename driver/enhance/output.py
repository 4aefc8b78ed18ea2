"""The frames the final encode gets, in output order, from the work folder.

Without an upscale model the server returns only the interpolated frames of a chunk
(``AP_AnimeRetime`` ``interpolated_only``); every copied frame (a source frame shown
again: on holds, at cuts, at whole-frame positions) is taken from the input, decoded
exactly as it was for the chunks, and placed by the same plan the server followed. With
a model every output frame comes from the server (the copies had to be upscaled too)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from anime_pipeline.core.chunkio import iter_chunk
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.retime import Phase
from anime_pipeline.core.retime import plan as retime_plan

from .probe import FrameSource, probe
from .render import F, Windows

ALL, INTERPOLATED = "all", "interpolated"  # what a run's chunk files hold (manifest "rendered")


def output_frames(work: Path, doc: dict, source: Iterator[F],
                  wait: Callable[[dict], None] | None = None) -> Iterator[np.ndarray | F]:
    """The output frames of the run ``doc`` (its manifest) in ``work``; ``source`` yields the
    input's frames of the run's range (``FrameSource``: RGB arrays, or the decoded frames),
    read only where copies are placed (as they come: a copy is the source's own frame);
    ``wait(record)``, when given, returns once that chunk is rendered."""
    n = doc["frames_in"]
    labels = MotionLabels.from_letters(doc["labels"], n).labels
    fps_in, fps_out = Fraction(doc["input"]["fps"]), Fraction(doc["key"]["fps_out"])
    windows = Windows(source)
    for r in doc["chunks"]:
        if wait is not None:
            wait(r)  # before the chunk's file is looked up
        for frame in _chunk_frames(work, doc, r, windows, labels, fps_in, fps_out):
            if wait is not None:
                wait(r)  # and at every frame: a stopped run stops the encode at once
            yield frame


def _chunk_frames(work: Path, doc: dict, r: dict, windows: Windows[F], labels, fps_in: Fraction,
                  fps_out: Fraction) -> Iterator[np.ndarray | F]:
    files = iter_chunk(work / r["file"]) if r.get("file") else iter(())
    if doc.get("rendered", ALL) == ALL:
        yield from itertools.islice(files, r["n_out"])
        return
    lo, hi = r["src_lo"], r["src_hi"]
    src = windows.get(lo, hi)
    for step in retime_plan(hi - lo + 1, fps_in, fps_out, labels[lo:hi], doc["mode"],
                            Phase(lo, r["first_out"], r["n_out"])):
        yield src[step.a] if step.is_copy else next(files)


def frames_of(work: Path) -> Iterator[np.ndarray]:
    """The frames the final encode of the run in ``work`` got (for checks and benchmarks)."""
    doc = json.loads((work / "enhance.json").read_text(encoding="utf-8"))
    first, stop = doc["source_range"]
    source = FrameSource(probe(doc["input"]["path"]), skip_errors=doc["key"]["settings"]["skip_errors"],
                         start=first, stop=stop)
    return output_frames(work, doc, iter(source))


class Stopped(Exception):
    """Rendering stopped before the chunk the final encode waits for (the encode is dropped)."""


class Encoder:
    """The final encode (``encode(wait)``, e.g. ``Enhance.encode``) on a thread of its own,
    running while the chunks render: it takes each chunk once its record says done, so
    encoding overlaps the server's work. ``stop()`` drops it; ``result()`` waits for it."""

    POLL_S = 0.05

    def __init__(self, encode: Callable[[Callable[[dict], None]], tuple[list[str], float]]):
        self._stopped = threading.Event()
        self._outcome: list = []
        self._thread = threading.Thread(target=self._run, args=(encode,), name="enhance-encode", daemon=True)
        self._thread.start()

    def _wait(self, record: dict) -> None:
        while self._stopped.is_set() or record.get("status") != "done":
            if self._stopped.wait(self.POLL_S):
                raise Stopped()

    def _run(self, encode) -> None:
        try:
            self._outcome.append(encode(self._wait))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by result()
            self._outcome.append(exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def result(self) -> tuple[list[str], float]:
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
