"""Split a strip of ``N`` panels side by side (the keyframes of a long shot, in time order).

The triptych's layout model (``core.triptych``) generalised to ``N >= 2`` panels::

    [border][panel][gutter][panel] ... [gutter][panel][border]   (+ top/bottom borders)

Detection reuses the triptych's pieces: columns get a spread and a colour; uniform columns
form colour-homogeneous runs; ``N - 1`` internal runs of one shared colour that leave ``N``
near-equal spans are the gutters (the most equal choice wins, then the widest gutters); all
panels get the width of the widest span, each window placed over its span where it covers
the least gutter colour; rows of gutter colour above and below every panel are borders.
Tolerances are tried from the strip's noise floor upwards, as for the triptych.

Unlike the triptych (which falls back to thirds), a strip whose gutters cannot be found is
an error here: a long shot's keyframes must not come from a guessed cut.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .triptych import (
    MAX_RUNS,
    MIN_PANEL_WIDTH,
    MIN_SPAN_RATIO,
    Box,
    _edge_runs,
    _runs,
    _spread,
    _tolerances,
    border_rows,
    search_layout,
)

MAX_CHOICES = 20_000  # gutter choices tried per colour group
MAX_PANELS = 16


@dataclass(frozen=True)
class PanelLayout:
    boxes: tuple[Box, ...]
    gutter_color: tuple[int, int, int]

    def to_dict(self) -> dict:
        return {"gutter_color": list(self.gutter_color),
                "boxes": [{"panel": k, "x": b.x, "y": b.y, "w": b.w, "h": b.h} for k, b in enumerate(self.boxes)]}


def _gutter_choices(internal, colour, tol_c: float, count: int):
    """Each group of ``count`` internal runs that share one colour (the gutter candidates)."""
    seen = set()
    for run in internal:
        c = colour[run[0]:run[1]].mean(0)
        group = tuple(r for r in internal if np.abs(colour[r[0]:r[1]].mean(0) - c).max() <= tol_c)
        if len(group) < count or group in seen:
            continue
        seen.add(group)
        yield from itertools.islice(itertools.combinations(group, count), MAX_CHOICES)


def _columns(strip: np.ndarray, spread, colour, tol: float, panels: int):
    """(deficit, starts, panel width, gutter colour) of the best gutter choice, or None."""
    width = strip.shape[1]
    uniform = spread <= tol
    tol_c = 2 * tol
    jumps = np.zeros(width, bool)
    jumps[1:] = np.abs(np.diff(colour, axis=0)).max(axis=1) > tol_c
    internal = [r for r in _runs(uniform, jumps) if r[0] > 0 and r[1] < width]
    if len(internal) > MAX_RUNS:
        internal = sorted(sorted(internal, key=lambda r: r[0] - r[1])[:MAX_RUNS])
    best = None
    for gutters in _gutter_choices(internal, colour, tol_c, panels - 1):
        sizes = np.array([b - a for a, b in gutters], float)
        gutter = (np.stack([colour[a:b].mean(0) for a, b in gutters]) * sizes[:, None]).sum(0) / sizes.sum()
        like = uniform & (np.abs(colour - gutter).max(axis=1) <= tol_c)
        left, right = _edge_runs(like)
        edges = [left, *itertools.chain.from_iterable(gutters), width - right]
        spans = list(zip(edges[::2], edges[1::2], strict=True))
        widths = [b - a for a, b in spans]
        if min(widths) < max(MIN_PANEL_WIDTH, MIN_SPAN_RATIO * max(widths)):
            continue
        key = (panels * max(widths) - sum(widths), -sizes.sum())
        if best is None or key < best[0]:
            best = (key, spans, gutter)
    if best is None:
        return None
    (deficit, _), spans, gutter = best
    p = max(b - a for a, b in spans)
    score = np.abs(strip - gutter).max(axis=2).mean(axis=0)
    cum = np.concatenate([[0.0], np.cumsum(score)])
    starts = []
    for a, b in spans:  # the window over the span covering the least gutter colour, centred on ties
        xs = np.arange(max(0, b - p), min(a, width - p) + 1)
        totals = cum[xs + p] - cum[xs]
        ok = xs[totals >= totals.max() - tol]
        starts.append(int(ok[np.argmin(np.abs(2 * ok + p - a - b))]))
    if any(x2 < x1 + p for x1, x2 in itertools.pairwise(starts)):
        return None
    return deficit, starts, p, gutter


def detect_panels(strip: np.ndarray, panels: int) -> PanelLayout:
    """Boxes of the ``panels`` panels of one strip ``[H, W, 3]`` (float 0..1), left to right.
    Raises ``InputError`` (input ``strip``) when no set of gutters is found."""
    if isinstance(panels, bool) or not isinstance(panels, int) or not 2 <= panels <= MAX_PANELS:
        raise InputError("panels", f"must be a whole number in 2..{MAX_PANELS}, got {panels!r}")
    height, width = strip.shape[:2]
    if width < panels * MIN_PANEL_WIDTH:
        raise InputError("strip", f"{width} px wide: {panels} panels need at least {MIN_PANEL_WIDTH} px each")
    row_spread, _ = _spread(strip)
    columns = {(0, 0): _spread(strip.transpose(1, 0, 2))}
    tols = _tolerances(min(row_spread.min(), columns[(0, 0)][0].min()))
    found = search_layout(strip, row_spread, columns, tols,
                          lambda inner, spread, colour, tol: _columns(inner, spread, colour, tol, panels))
    if found is None:
        raise InputError("strip", f"no {panels - 1} gutters of one uniform colour leaving {panels} near-equal "
                         f"panels were found in the {width}x{height} strip")
    top, bottom = border_rows(strip, found)
    (_, starts, p, gutter), *_ = found
    if top + bottom >= height:
        raise InputError("strip", "the panels are flat gutter colour")
    r, g, b = (int(v) for v in np.clip(np.round(gutter * 255), 0, 255))
    return PanelLayout(tuple(Box(x, top, p, height - top - bottom) for x in starts), (r, g, b))


def split_panels(strip: np.ndarray, panels: int) -> tuple[list[np.ndarray], PanelLayout]:
    """The ``panels`` crops of one strip ``[H, W, 3]`` (left to right) and their layout."""
    layout = detect_panels(strip, panels)
    return [strip[b.y:b.y + b.h, b.x:b.x + b.w] for b in layout.boxes], layout
