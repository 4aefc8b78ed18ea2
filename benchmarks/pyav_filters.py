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
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)]
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

    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts, vf.time_base = i, time_base
        graph.push(vf)
        yield from drain()
    graph.push(None)
    yield from drain()
