"""Run frames in memory through an ffmpeg filter chain with PyAV (the peers the
benchmarks compare against: scdet, select, minterpolate, blackdetect...)."""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator

import av
import numpy as np


def run_chain(frames: Iterable[np.ndarray], chain: list[tuple[str, str | None]], *, width: int, height: int,
              time_base: Fraction) -> Iterator[av.VideoFrame]:
    """Push RGB ``uint8`` frames (pts = their index) through ``buffer -> chain -> buffersink``
    and yield every output frame, the ones flushed at the end included."""
    return run_frames((av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24") for f in frames), chain,
                      width=width, height=height, time_base=time_base, pix_fmt="rgb24")


def run_frames(frames: Iterable[av.VideoFrame], chain: list[tuple[str, str | None]], *, width: int, height: int,
               time_base: Fraction, pix_fmt: str) -> Iterator[av.VideoFrame]:
    """:func:`run_chain` for PyAV frames of ``pix_fmt`` (e.g. straight from a decoder, as
    ffmpeg's command line feeds its filters)."""
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=time_base)]
    nodes += [graph.add(name, args) if args is not None else graph.add(name) for name, args in chain]
    nodes.append(graph.add("buffersink"))
    for a, b in zip(nodes, nodes[1:]):
        a.link_to(b)
    graph.configure()

    def drain():
        while True:
            try:
                yield graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return

    for i, vf in enumerate(frames):
        vf.pts, vf.time_base = i, time_base
        graph.push(vf)
        yield from drain()
    graph.push(None)
    yield from drain()
