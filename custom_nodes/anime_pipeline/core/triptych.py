"""Split a triptych strip (first | hero | last panels side by side) into its three panels.

Layout model for ``auto`` detection, per strip::

    [left border][panel][gutter][panel][gutter][panel][right border]   (+ top/bottom borders)

Borders and gutters are columns/rows of one uniform colour (light or dark, any width,
0 included); the three panels have the same size. Detection:

1. Each column gets a *spread* (99th percentile over its rows of the largest channel
   deviation from the column's median colour) and a colour (that median). A column is
   uniform when its spread is within a tolerance. Uniformity is measured along the *whole*
   column, so a panel edge whose colour is close to the gutter's but carries any texture or
   gradient is not taken for a gutter.
2. Uniform columns form colour-homogeneous runs. The two internal runs of one shared colour
   that leave three spans of near-equal width are the gutters; that colour is the gutter
   colour and runs of it touching the strip's sides are the borders.
3. All panels get the width of the widest span. A narrower span had flat, gutter-coloured
   columns at its edge that were part of the panel; it grows back over the adjacent columns
   least like the gutter colour (ties: gutters and borders as equal as possible).
4. Top/bottom borders are the rows whose panel pixels all have the gutter colour (or rows
   uniform across the whole strip).

Tolerances are tried from 3x the strip's noise floor (its most uniform line) upwards, and the
tightest one that gives near-equal spans wins: clean PNG strips keep panel edges a couple of
levels away from the gutter colour, noisy ones (diffusion noise, soft edges) still split
(boxes within 1-3 px, see ``trim_margin``). JPEG blocking next to near-gutter-coloured panel
edges can shift a box by several pixels.
When no pair of gutters is found the area inside the borders is cut in ``thirds`` and the
report says so. Limitation: if *every* panel has a full-height flat edge in exactly the gutter
colour, panels come out narrower by the smallest such edge.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .imaging import FITS, fit_frames, target_size  # noqa: F401 (FITS, fit_frames re-exported)
from .validate import InputError, check_budget, check_images, frames_bytes

log = logging.getLogger(__name__)

MODES = ("auto", "thirds")
PANEL_NAMES = ("first", "hero", "last")
MIN_PANEL_WIDTH = 3

TOL_MIN, TOL_MAX = 1.5 / 255, 12 / 255  # bounds of the uniformity tolerance
NOISE_FACTOR = 3.0  # tolerance = NOISE_FACTOR x the most uniform line's spread
MIN_SPAN_RATIO = 0.6  # a gutter candidate pair must leave spans >= this x the widest
NEAR_EQUAL = 0.1  # spans whose summed shortfall is <= this x the panel width are near-equal
MAX_PLACEMENTS = 2_000_000
MAX_RUNS = 64  # gutter candidates considered per strip
NO_GUTTERS = "auto: no pair of gutters found; cut the area inside the borders in thirds"
FLAT = "auto: the strip is one flat colour; cut in thirds"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class StripLayout:
    """Where the panels of one strip are. ``mode`` is the mode actually used."""

    mode: str
    boxes: tuple[Box, Box, Box]
    note: str | None = None
    gutter_color: tuple[int, int, int] | None = None

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "note": self.note,
            "gutter_color": list(self.gutter_color) if self.gutter_color else None,
            "boxes": [{"panel": n, **asdict(b)} for n, b in zip(PANEL_NAMES, self.boxes, strict=True)],
        }


def _spread(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per line of ``lines`` ``[N, L, 3]``: (99th-percentile deviation from its median colour, median)."""
    med = np.median(lines, axis=1)
    dev = np.abs(lines - med[:, None, :]).max(axis=2)
    return np.percentile(dev, 99, axis=1), med


def _runs(mask: np.ndarray, breaks: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Half-open ``(start, end)`` runs of True in ``mask``; ``breaks[i]`` splits a run before ``i``."""
    runs, start = [], None
    for i, m in enumerate(mask):
        if start is not None and (not m or (breaks is not None and breaks[i])):
            runs.append((start, i))
            start = None
        if m and start is None:
            start = i
    if start is not None:
        runs.append((start, len(mask)))
    return runs


def _edge_runs(mask: np.ndarray) -> tuple[int, int]:
    """Lengths of the True runs touching the start and the end of ``mask``."""
    n = len(mask)
    head = n if mask.all() else int(np.argmin(mask))
    tail = n if mask.all() else int(np.argmin(mask[::-1]))
    return head, tail


def _thirds_boxes(x0: int, x1: int, y: int, h: int) -> tuple[Box, Box, Box]:
    """Cut ``[x0, x1)`` at round(W/3), round(2W/3); centre-crop to the narrowest piece."""
    width = x1 - x0
    cuts = [x0, x0 + math.floor(width / 3 + 0.5), x0 + math.floor(2 * width / 3 + 0.5), x1]
    common = min(b - a for a, b in itertools.pairwise(cuts))
    left, middle, right = (Box(a + (b - a - common) // 2, y, common, h) for a, b in itertools.pairwise(cuts))
    return left, middle, right


def _place(spans, width: int, score: np.ndarray, tol: float):
    """Panel starts (x1, x2, x3) of width P = widest span, each window covering its span.

    Maximises the summed column score inside the windows (within ``tol`` per column of the
    best); ties go to the most equal gutters and borders. None if infeasible."""
    p = max(b - a for a, b in spans)
    ranges = [np.arange(max(0, b - p), min(a, width - p) + 1) for a, b in spans]
    if any(len(r) == 0 for r in ranges) or math.prod(len(r) for r in ranges) > MAX_PLACEMENTS:
        return None
    x1, x2, x3 = np.meshgrid(*ranges, indexing="ij", sparse=False)
    ok = (x2 >= x1 + p) & (x3 >= x2 + p)
    if not ok.any():
        return None
    x1, x2, x3 = x1[ok], x2[ok], x3[ok]
    cum = np.concatenate([[0.0], np.cumsum(score)])
    total = sum(cum[x + p] - cum[x] for x in (x1, x2, x3))
    best = total >= total.max() - tol
    g1, g2 = x2 - x1 - p, x3 - x2 - p
    asym = np.abs(g1 - g2) + np.abs(x1 - (width - x3 - p))
    idx = np.flatnonzero(best)[np.argmin(asym[best])]
    return int(x1[idx]), int(x2[idx]), int(x3[idx]), p


def _auto_columns(strip: np.ndarray, spread: np.ndarray, colour: np.ndarray, tol: float):
    """Find the panel columns: (deficit px, (x1, x2, x3), P, gutter colour) or None.

    The deficit (how much narrower than the widest the other spans were) measures how
    well the strip fits the three-equal-panels model."""
    width = strip.shape[1]
    uniform = spread <= tol
    tol_c = 2 * tol
    jumps = np.zeros(width, bool)
    jumps[1:] = np.abs(np.diff(colour, axis=0)).max(axis=1) > tol_c
    runs = _runs(uniform, jumps)
    internal = [r for r in runs if r[0] > 0 and r[1] < width]
    if len(internal) > MAX_RUNS:  # many flat stripes: keep the widest (in strip order)
        internal = sorted(sorted(internal, key=lambda r: r[0] - r[1])[:MAX_RUNS])
    best = None
    for i, ri in enumerate(internal):
        for rj in internal[i + 1:]:
            ci, cj = colour[ri[0]:ri[1]].mean(0), colour[rj[0]:rj[1]].mean(0)
            if np.abs(ci - cj).max() > tol_c:
                continue
            gutter = (ci * (ri[1] - ri[0]) + cj * (rj[1] - rj[0])) / (ri[1] - ri[0] + rj[1] - rj[0])
            like = uniform & (np.abs(colour - gutter).max(axis=1) <= tol_c)
            left, right = _edge_runs(like)
            spans = [(left, ri[0]), (ri[1], rj[0]), (rj[1], width - right)]
            widths = [b - a for a, b in spans]
            if min(widths) < max(MIN_PANEL_WIDTH, MIN_SPAN_RATIO * max(widths)):
                continue
            key = (3 * max(widths) - sum(widths), -(ri[1] - ri[0] + rj[1] - rj[0]))
            if best is None or key < best[0]:
                best = (key, spans, gutter)
    if best is None:
        return None
    (deficit, _), spans, gutter = best
    score = np.abs(strip - gutter).max(axis=2).mean(axis=0)
    placed = _place(spans, width, score, tol)
    if placed is None:
        return None
    *starts, p = placed
    return deficit, tuple(starts), p, gutter


def _tolerances(floor: float) -> list[float]:
    """Uniformity tolerances to try, tightest first: from the strip's noise floor up to TOL_MAX."""
    tol = float(np.clip(NOISE_FACTOR * floor, TOL_MIN, TOL_MAX))
    out = [tol]
    while out[-1] < TOL_MAX:
        out.append(min(out[-1] * 2, TOL_MAX))
    return out


def _thirds_inside_borders(strip: np.ndarray, row_spread: np.ndarray, tol: float, note: str) -> StripLayout:
    height, width = strip.shape[:2]
    top, bottom = _edge_runs(row_spread <= tol)
    if top + bottom >= height:
        return StripLayout("thirds", _thirds_boxes(0, width, 0, height), FLAT)
    left, right = _edge_runs(_spread(strip[top:height - bottom].transpose(1, 0, 2))[0] <= tol)
    x0, x1 = left, width - right
    if x1 - x0 < 3 * MIN_PANEL_WIDTH:
        x0, x1 = 0, width
    log.info("triptych: %s", note)
    return StripLayout("thirds", _thirds_boxes(x0, x1, top, height - top - bottom), note)


def detect_layout(strip: np.ndarray, mode: str = "auto") -> StripLayout:
    """Panel boxes of one strip ``[H, W, 3]`` float in 0..1.

    ``auto`` tries uniformity tolerances from the strip's own noise floor upwards and keeps
    the tightest one whose gutters leave three near-equal spans, so clean strips keep panel
    edges within a few levels of the gutter colour and noisy ones (JPEG, diffusion noise)
    still split."""
    height, width = strip.shape[:2]
    if mode == "thirds":
        return StripLayout("thirds", _thirds_boxes(0, width, 0, height))

    row_spread, _ = _spread(strip)
    columns = {(0, 0): _spread(strip.transpose(1, 0, 2))}
    floor = min(row_spread.min(), columns[(0, 0)][0].min())
    tols = _tolerances(floor)
    found = None
    for tol in tols:
        # Rows uniform across the whole strip first (an outer frame of any colour).
        top, bottom = _edge_runs(row_spread <= tol)
        if top + bottom >= height:
            break
        if (top, bottom) not in columns:
            columns[(top, bottom)] = _spread(strip[top:height - bottom].transpose(1, 0, 2))
        layout = _auto_columns(strip[top:height - bottom], *columns[(top, bottom)], tol)
        if layout is None:
            continue
        # The tightest tolerance whose spans are near-equal wins; if none is, the most equal.
        near_equal = layout[0] <= NEAR_EQUAL * layout[2]
        if near_equal or found is None or layout[0] < found[0][0]:
            found = (layout, tol, top, bottom)
        if near_equal:
            break
    if found is None:
        return _thirds_inside_borders(strip, row_spread, tols[0], NO_GUTTERS)
    (_, starts, p, gutter), tol, top, bottom = found
    cols = np.concatenate([np.arange(x, x + p) for x in starts])
    panel_rows = np.abs(strip[:, cols] - gutter).max(axis=2)
    gtop, gbottom = _edge_runs(np.percentile(panel_rows, 99, axis=1) <= tol)
    top, bottom = max(top, gtop), max(bottom, gbottom)
    if top + bottom >= height:
        return _thirds_inside_borders(strip, row_spread, tols[0], "auto: panels are flat gutter colour; cut in thirds")
    r, g, b = (int(v) for v in np.clip(np.round(gutter * 255), 0, 255))
    left, middle, right = (Box(x, top, p, height - top - bottom) for x in starts)
    return StripLayout("auto", (left, middle, right), None, (r, g, b))


def split_triptych(
    strips: torch.Tensor,
    mode: str = "auto",
    trim_margin: int = 0,
    target_width: int = 0,
    target_height: int = 0,
    fit: str = "crop",
    *,
    node: str | None = None,
    budget: tuple[int, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Split each strip of ``[B,H,W,3]`` into three panels.

    Returns ``first``, ``hero``, ``last`` (``[B,h,w,3]`` each), ``panels`` (``[3B,h,w,3]``,
    first/hero/last per strip) and a report (mode used, notes and boxes per strip).
    ``budget`` (bytes, where it came from): outputs larger than it (the panels twice: as
    ``panels`` and as first/hero/last) are refused before they are made."""
    strips = check_images(strips, "strip", node=node)
    if mode not in MODES:
        raise InputError("mode", f"must be one of {list(MODES)}, got {mode!r}", node)
    if fit not in FITS:
        raise InputError("fit", f"must be one of {list(FITS)}, got {fit!r}", node)
    for name, value in (("trim_margin", trim_margin), ("target_width", target_width), ("target_height", target_height)):
        if int(value) != value or value < 0:
            raise InputError(name, f"must be a whole number >= 0, got {value!r}", node)
    _, height, width, _ = strips.shape
    if width < 3 * MIN_PANEL_WIDTH:
        raise InputError("strip", f"strip is {width} px wide: at least {MIN_PANEL_WIDTH} px per panel needed", node)

    images = strips.detach().cpu().numpy()
    layouts, crops = [], []
    for i, strip in enumerate(images):
        layout = detect_layout(strip, mode)
        left, middle, right = (Box(b.x + trim_margin, b.y + trim_margin, b.w - 2 * trim_margin,
                                    b.h - 2 * trim_margin) for b in layout.boxes)
        boxes = (left, middle, right)
        if boxes[0].w < 1 or boxes[0].h < 1:
            size = f"{layout.boxes[0].w}x{layout.boxes[0].h}"
            problem = f"{trim_margin} px on each side leaves nothing of strip {i}'s {size} panels"
            raise InputError("trim_margin", problem, node)
        layout = StripLayout(layout.mode, boxes, layout.note, layout.gutter_color)
        layouts.append(layout)
        crops.append(torch.stack([strips[i, b.y:b.y + b.h, b.x:b.x + b.w] for b in boxes]))

    sizes = [(c.shape[2], c.shape[1]) for c in crops]
    targets = [target_size(w, h, target_width, target_height) for w, h in sizes]
    if len(set(targets)) > 1:
        listed = ", ".join(f"strip {i}: {w}x{h}" for i, (w, h) in enumerate(targets))
        name = "strip" if not (target_width or target_height) else "target_height" if target_height else "target_width"
        raise InputError(
            name,
            f"panels of the batch come out at different sizes ({listed}); set both target_width and "
            "target_height to bring them to one size",
            node,
        )
    out_w, out_h = targets[0]
    if budget is not None:
        check_budget(2 * frames_bytes(3 * len(crops), out_h, out_w, strips.shape[3]), budget[0],
                     f"{len(crops)} strip(s) of three {out_w}x{out_h} panels (twice: panels and first/hero/last)",
                     "target_width" if target_width else "target_height" if target_height else "strip", node=node,
                     budget_from=budget[1])
    panels = torch.cat([fit_frames(c, out_w, out_h, fit) for c in crops]).contiguous()
    report = {
        "output_size": [out_w, out_h],
        "fit": fit if any(size != (out_w, out_h) for size in sizes) else None,  # None: not resized
        "strips": [{"index": i, **layout.to_dict()} for i, layout in enumerate(layouts)],
    }
    first, hero, last = (panels[k::3].contiguous() for k in range(3))
    return first, hero, last, panels, report
