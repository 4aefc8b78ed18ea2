"""Per-frame descriptors and per-interval scores of :mod:`.motion`, computed a run at a time.

A run is up to ``capacity`` consecutive frames. Each frame is reduced once to a small
analysis thumbnail (the only per-frame call on full-size pixels); every later step is one
OpenCV call over the run's thumbnails stacked as a tall image, written into buffers that
are allocated once per thumbnail size and reused (:class:`Workspace`). Both matter on small
machines: the per-call overhead of dozens of calls per frame, and the page faults of fresh
multi-megabyte temporaries, each cost more than the arithmetic.

Stacking never mixes frames: the block and cell sizes divide the (block-cropped) thumbnail
height, so every area average stays inside one frame, and the one interpolating step (the
low-pass upsampling) sees each frame's cells padded with its own edge rows. The scores are
those of the frame-by-frame definitions in :mod:`.motion`'s module doc, to float rounding.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

ANALYSIS_SIZE = 160  # long side of the analysis thumbnail, px
BLOCK = 8  # block size of detail_change, thumbnail px
LOWPASS_CELL = 4  # thumbnail px; the high-pass removes what varies slower than this
HIST_BINS = 64


def analysis_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the analysis thumbnail for frames of this size."""
    s = min(1.0, ANALYSIS_SIZE / max(height, width))
    return max(BLOCK, round(height * s)), max(BLOCK, round(width * s))


def thumbnail(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``uint8`` RGB analysis thumbnail ``[th, tw, 3]`` of a ``uint8`` or float (0..1) frame
    ``[H, W, 3]``, written into ``out`` when given.

    Up to 2x: the exact area average. Beyond: one source row per band of ``step`` rows
    (the band's middle row), bilinearly resampled; horizontally that averages 2 source
    pixels per thumbnail pixel. Reading the frame is the dominant cost (memory-bound at
    about 7 GB/s per core on the 2-core machine the benchmarks ran on), and one row per band
    reads half of what bilinear sampling of the whole frame reads (2 rows per band), for
    the same thumbnail size; see ``benchmarks/bench_gating.py --upscale`` for its accuracy."""
    h, w = frame.shape[:2]
    th, tw = analysis_size(h, w)
    if out is None:
        out = np.empty((th, tw, 3), np.uint8)
    if (th, tw) == (h, w):
        small = frame
    else:
        if w / tw <= 2.01:
            src, method = frame, cv2.INTER_AREA
        else:
            step = h // th
            src, method = frame[(step - 1) // 2 :: step], cv2.INTER_LINEAR
        if frame.dtype == np.uint8:
            return cv2.resize(src, (tw, th), dst=out, interpolation=method)
        small = cv2.resize(src, (tw, th), interpolation=method)
    if small.dtype == np.uint8:
        np.copyto(out, small)
    else:
        np.copyto(out, np.clip(small * 255.0 + 0.5, 0, 255), casting="unsafe")  # truncation = rounding here
    return out


def block_crop(x: np.ndarray) -> np.ndarray:
    """``x`` (``[..., h, w]``) cropped to whole ``BLOCK`` x ``BLOCK`` blocks (what the block scores use)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % BLOCK, : w - w % BLOCK]


def block_means(x: np.ndarray) -> np.ndarray:
    """Means of the ``BLOCK`` x ``BLOCK`` blocks of float32 ``[h, w]`` (partial blocks dropped)."""
    x = block_crop(x)
    return cv2.resize(x, (x.shape[1] // BLOCK, x.shape[0] // BLOCK), interpolation=cv2.INTER_AREA)


def highpass(x: np.ndarray) -> np.ndarray:
    """``x`` minus its low-pass: the ``LOWPASS_CELL``-px cell means of float32 ``x`` (sides
    multiples of ``BLOCK``) bilinearly interpolated back to full size (sigma ~2 px)."""
    h, w = x.shape
    cells = cv2.resize(x, (w // LOWPASS_CELL, h // LOWPASS_CELL), interpolation=cv2.INTER_AREA)
    return cv2.subtract(x, cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR))


# Y, U, V levels are packed into bins ``c * HIST_BINS + level >> _BIN_SHIFT`` (0..191), so the
# three histograms of a frame come out of one single-channel ``calcHist``.
_BIN_SHIFT = 8 - (HIST_BINS.bit_length() - 1)
_PLANE_OFFSETS = (0, HIST_BINS, 2 * HIST_BINS, 0)


class Workspace:
    """Buffers for runs of up to ``capacity`` frames with ``th`` x ``tw`` thumbnails."""

    def __init__(self, capacity: int, th: int, tw: int):
        hc, wc = th - th % BLOCK, tw - tw % BLOCK
        c, cell = capacity, LOWPASS_CELL
        self.capacity, self.th, self.tw = capacity, th, tw
        self.thumbs = np.empty((c, th, tw, 3), np.uint8)
        self.grey = np.empty((c, th, tw), np.uint8)
        self.hp = np.empty((c, hc, wc), np.float32)  # block-cropped luma, high-passed in place
        self.cells = np.empty((c, hc // cell, wc // cell), np.float32)
        self.cells_padded = np.empty((c, hc // cell + 2, wc // cell), np.float32)  # + one edge row each side
        self.up = np.empty((c, hc + 2 * cell, wc), np.float32)
        self.change = np.empty((c, hc, wc), np.float32)
        self.blocks = np.empty((c, hc // BLOCK, wc // BLOCK), np.float32)
        self.half = np.empty((c, (th + 1) // 2, (tw + 1) // 2, 3), np.uint8)
        self.yuv = np.empty_like(self.half)
        self.packed = np.empty_like(self.half)
        self.hist = np.empty((c, 3, HIST_BINS), np.float32)
        self.cdf = np.empty_like(self.hist)


_FREE: dict[tuple[int, int, int], list[Workspace]] = {}
_LOCK = threading.Lock()


def acquire(capacity: int, th: int, tw: int) -> Workspace:
    """A free workspace of this shape (kept for reuse after :func:`release`)."""
    with _LOCK:
        free = _FREE.get((capacity, th, tw))
        if free:
            return free.pop()
    return Workspace(capacity, th, tw)


def release(ws: Workspace, keep: int = 4, shapes: int = 3) -> None:
    """Return ``ws`` for reuse: at most ``keep`` per shape, for the ``shapes`` latest shapes
    (a few MB each; long clips reuse the same few, so memory stays bounded)."""
    key = (ws.capacity, ws.th, ws.tw)
    with _LOCK:
        free = _FREE.pop(key, [])
        _FREE[key] = free  # most recent last
        while len(_FREE) > shapes:
            del _FREE[next(iter(_FREE))]
        if len(free) < keep:
            free.append(ws)


def describe_run(frames, ws: Workspace) -> int:
    """Fill ``ws`` with the descriptors of ``frames`` (an iterable of numpy ``[H, W, 3]``, at
    most ``ws.capacity``, consumed one at a time): ``thumbs``, ``grey`` (``uint8`` luma), ``hp``
    (high-passed, block-cropped luma), ``cdf`` (cumulative Y, U, V histograms, fractions of pixels).
    Returns the frame count."""
    th, tw = ws.th, ws.tw
    hc, wc = ws.hp.shape[1:]
    m = 0
    for frame in frames:
        if m == ws.capacity:
            raise ValueError(f"describe_run: more than {ws.capacity} frames for this workspace")
        if analysis_size(*frame.shape[:2]) != (th, tw):
            raise ValueError(f"describe_run: frame {m} is {list(frame.shape)}, not the run's size")
        thumbnail(frame, ws.thumbs[m])
        m += 1
    thumbs = ws.thumbs[:m]
    cv2.cvtColor(thumbs.reshape(m * th, tw, 3), cv2.COLOR_RGB2GRAY, dst=ws.grey[:m].reshape(m * th, tw))

    # High-pass: cell means (exact area averages, inside each frame), then bilinear
    # upsampling of each frame's cells padded with copies of its first and last cell rows.
    cell = LOWPASS_CELL
    crop, cells, padded, up = ws.hp[:m], ws.cells[:m], ws.cells_padded[:m], ws.up[:m]
    np.copyto(crop, ws.grey[:m, :hc, :wc])
    cv2.resize(crop.reshape(m * hc, wc), (wc // cell, m * hc // cell), dst=cells.reshape(m * hc // cell, wc // cell),
               interpolation=cv2.INTER_AREA)
    padded[:, 1:-1] = cells
    padded[:, 0] = cells[:, 0]
    padded[:, -1] = cells[:, -1]
    cv2.resize(padded.reshape(-1, wc // cell), (wc, m * (hc + 2 * cell)), dst=up.reshape(-1, wc),
               interpolation=cv2.INTER_LINEAR)
    np.subtract(crop, up[:, cell : cell + hc], out=crop)

    # Histograms of the half-size thumbnail: one packed single-channel calcHist per frame.
    hh, hw = ws.half.shape[1:3]
    if th % 2 == 0 and tw % 2 == 0:
        cv2.resize(thumbs.reshape(m * th, tw, 3), (hw, m * hh), dst=ws.half[:m].reshape(m * hh, hw, 3),
                   interpolation=cv2.INTER_AREA)
    else:  # an odd side: area weights would straddle frames in a stack
        for j in range(m):
            cv2.resize(thumbs[j], (hw, hh), dst=ws.half[j], interpolation=cv2.INTER_AREA)
    tall = (m * hh, hw, 3)
    cv2.cvtColor(ws.half[:m].reshape(tall), cv2.COLOR_RGB2YUV, dst=ws.yuv[:m].reshape(tall))
    np.right_shift(ws.yuv[:m], _BIN_SHIFT, out=ws.packed[:m])
    cv2.add(ws.packed[:m].reshape(tall), _PLANE_OFFSETS, dst=ws.packed[:m].reshape(tall))
    for j in range(m):
        cv2.calcHist([ws.packed[j].reshape(hh, hw * 3)], [0], None, [3 * HIST_BINS], [0, 3 * HIST_BINS],
                     hist=ws.hist[j].reshape(-1, 1))
    np.cumsum(ws.hist[:m], axis=2, out=ws.cdf[:m])
    ws.cdf[:m] *= np.float32(1.0 / (hh * hw))
    return m


def detail_changes(ws: Workspace, m: int) -> np.ndarray:
    """``detail_change`` of the ``m - 1`` intervals of a described run: the largest
    ``BLOCK``-block mean of the high-passed luma difference."""
    hc, wc = ws.hp.shape[1:]
    k = m - 1
    cv2.absdiff(ws.hp[1:m].reshape(k * hc, wc), ws.hp[: m - 1].reshape(k * hc, wc),
                dst=ws.change[:k].reshape(k * hc, wc))
    blocks = ws.blocks[:k]
    cv2.resize(ws.change[:k].reshape(k * hc, wc), (wc // BLOCK, k * hc // BLOCK),
               dst=blocks.reshape(k * hc // BLOCK, wc // BLOCK), interpolation=cv2.INTER_AREA)
    return blocks.reshape(k, -1).max(axis=1)


def color_shifts(ws: Workspace, m: int) -> np.ndarray:
    """``color_shift`` of the ``m - 1`` intervals of a described run: the mean over Y, U, V of
    the histograms' earth mover's distance, in 8-bit levels."""
    return np.abs(ws.cdf[1:m] - ws.cdf[: m - 1]).sum(axis=(1, 2)) * np.float32(256 / HIST_BINS / 3)
