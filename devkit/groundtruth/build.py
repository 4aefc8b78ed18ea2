"""Frozen ground truth for cut / hold / motion gating, built from real frames.

Source footage: the animated WebP outputs (WAN, Kling, Veo, ...) that the MIT-licensed
``comfyui-workflow-templates`` package installs; nothing is committed, clips are built
at run time. Construction (all parameters and seeds are module constants, frozen
before any classifier threshold was tuned):

1. Decode each clip, cover-resize to ``FRAME_SIZE``. Clips in ``EXCLUDED`` are dropped;
   clips with an internal discontinuity are split into shots at ``SHOT_BREAKS``
   (found by a scan for isolated difference spikes, then checked by eye).
2. Near-duplicates are removed per shot: a frame is kept only if some 8x8 block of its
   luma differs from the last kept frame by >= ``DEDUP_LEVEL`` on average (the valley
   between the codec near-duplicate mode and real motion over all template clips).
   The kept frames are the "drawings".
3. Clips are split by a seeded permutation of their names into a tuning pool and a
   held-out pool; a ground-truth sequence only uses shots of one pool.
4. Composition: segments of ``SEGMENT_DRAWINGS`` drawings from a random shot (never
   the same clip twice in a row), so every segment boundary is an exact cut. Each
   drawing is held 1, 2 or 3 frames (p = ``HOLD_P``); a fraction ``PARTIAL_P`` of
   drawing changes are partial: only a patch of 2-6 % of the frame (where the next
   drawing differs most, e.g. a mouth) is replaced. Flash frames (a white flash or a
   one-frame insert from a third clip) are added with ``FLASH_P``; both intervals
   around a flash are cuts.
5. Variants add noise to every output frame independently: ``lossless``; ``jpeg``
   (quality 70-92 per frame); ``gen`` (white sigma 2 + low-frequency correlated
   noise 3 + 1 % gain jitter, mimicking generative "boiling"); ``gen_strong`` (3, 5,
   2 %, +-0.3 px jitter); ``control``: the ``gen`` noise on a composition without any
   holds (every drawing shown once).

``build(split, variant)`` returns a :class:`Sequence` with frames ``uint8 [N,H,W,3]``
and one label per interval.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

TEMPLATE_PACKAGE = "comfyui_workflow_templates"
FRAME_SIZE = (320, 240)  # width, height
MIN_SOURCE_FRAMES = 20
DEDUP_LEVEL = 6.0
EXCLUDED = {"wan2.1_flf2v_720_f16-1": "whole-frame texture flicker: no stable shot"}
# Shot breaks: the interval after frame i of the source is a discontinuity (loop seam or
# cut inside the thumbnail; the Kling one is a lightning flash, ambiguous, so excluded).
SHOT_BREAKS = {
    "hunyuan_video_text_to_video-1": (27,),
    "mochi_text_to_video_example-1": (49,),
    "video_wan2_2_14B_fun_inpaint-1": (50,),
    "api_kling_i2v-1": (11,),
}
SPLIT_SEED = 20240604
TUNE_FRACTION = 0.4
SEED = 7
SEGMENTS = 60  # full ground truth per variant (benchmark)
SEGMENT_DRAWINGS = (4, 10)  # inclusive range
HOLD_P = (0.25, 0.5, 0.25)  # drawing shown for 1, 2, 3 frames
PARTIAL_P = 0.25
PARTIAL_AREA = (0.02, 0.06)
PARTIAL_MIN_CHANGE = 12.0  # mean |luma change| inside the patch, else a full change
FLASH_P = 0.12  # per segment boundary and per segment (mid-shot white flash)
VARIANTS = ("lossless", "jpeg", "gen", "gen_strong", "control")
NOISE = {  # white sigma, correlated amplitude, gain sigma, jitter px
    "gen": (2.0, 3.0, 0.01, 0.0),
    "gen_strong": (3.0, 5.0, 0.02, 0.3),
}
JPEG_QUALITY = (70, 92)
# Smaller frozen subset run by the unit tests (held-out clips only).
TEST_SUBSET = {"max_clips": 14, "segments": 40}


@dataclass(frozen=True)
class Sequence:
    """A ground-truth clip: ``labels[i]`` is the interval ``frames[i] -> frames[i+1]``."""

    frames: np.ndarray
    labels: tuple[str, ...]
    partial: tuple[bool, ...]  # interval is a partial drawing change (label motion)
    flash_frames: tuple[int, ...]
    variant: str
    split: str
    clips: tuple[str, ...]


def templates_dir() -> Path | None:
    """Folder of the template WebPs, or ``None`` when the package is not installed."""
    spec = importlib.util.find_spec(TEMPLATE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "templates"
    return path if path.is_dir() else None


def missing_reason() -> str | None:
    """Why the ground truth cannot be built here (``None`` when it can)."""
    if templates_dir() is None:
        return f"{TEMPLATE_PACKAGE} (test footage) is not installed; pip install '.[test]'"
    return None


@lru_cache(maxsize=1)
def clip_names() -> tuple[str, ...]:
    """Animated template WebPs with at least ``MIN_SOURCE_FRAMES`` frames, sorted."""
    from PIL import Image

    root = templates_dir()
    if root is None:
        return ()
    names = []
    for path in sorted(root.glob("*.webp")):
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) >= MIN_SOURCE_FRAMES and path.stem not in EXCLUDED:
                names.append(path.stem)
    return tuple(names)


def split_names(split: str) -> tuple[str, ...]:
    """Clip names of the ``"tune"`` or ``"heldout"`` pool, in a frozen random order."""
    names = list(clip_names())
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    n_tune = round(len(names) * TUNE_FRACTION)
    picked = {"tune": order[:n_tune], "heldout": order[n_tune:]}
    if split not in picked:
        raise ValueError(f"split must be 'tune' or 'heldout', got {split!r}")
    return tuple(names[i] for i in picked[split])


def cover_resize(frame: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Resize to cover ``size`` (width, height) and centre-crop."""
    w, h = size
    sh, sw = frame.shape[:2]
    s = max(w / sw, h / sh)
    rw, rh = max(w, round(sw * s)), max(h, round(sh * s))
    r = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y0, x0 = (rh - h) // 2, (rw - w) // 2
    return np.ascontiguousarray(r[y0 : y0 + h, x0 : x0 + w])


@lru_cache(maxsize=128)
def load_clip(name: str, size: tuple[int, int] | None = FRAME_SIZE) -> np.ndarray:
    """All frames of a template WebP as ``uint8 [N,H,W,3]`` (cover-resized unless ``size`` is None)."""
    from PIL import Image, ImageSequence

    root = templates_dir()
    if root is None:
        raise FileNotFoundError(missing_reason())
    with Image.open(root / f"{name}.webp") as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    if size is not None:
        frames = [cover_resize(f, size) for f in frames]
    arr = np.stack(frames)
    arr.flags.writeable = False
    return arr


def block_max(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """Largest mean |luma difference| over ``block`` x ``block`` blocks."""
    ya = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    yb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    d = np.abs(ya - yb)
    h, w = (d.shape[0] // block) * block, (d.shape[1] // block) * block
    return float(d[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3)).max())


def dedup(frames: np.ndarray) -> np.ndarray:
    """Keep a frame only when it differs from the last kept one (see ``DEDUP_LEVEL``)."""
    kept = [0]
    for i in range(1, len(frames)):
        if block_max(frames[kept[-1]], frames[i]) >= DEDUP_LEVEL:
            kept.append(i)
    return frames[kept]


@lru_cache(maxsize=128)
def shots(name: str) -> tuple[np.ndarray, ...]:
    """De-duplicated drawings of each shot of a clip."""
    frames = load_clip(name)
    bounds = [0, *(i + 1 for i in SHOT_BREAKS.get(name, ())), len(frames)]
    return tuple(dedup(frames[a:b]) for a, b in zip(bounds, bounds[1:]) if b - a >= 2)


def _partial(prev: np.ndarray, nxt: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``prev`` with one patch of ``nxt`` pasted where they differ most, or None if too small a change."""
    h, w = prev.shape[:2]
    area = rng.uniform(*PARTIAL_AREA) * h * w
    aspect = rng.uniform(0.6, 1.6)
    ph, pw = max(4, round(np.sqrt(area / aspect))), max(4, round(np.sqrt(area * aspect)))
    diff = np.abs(prev.astype(np.int16) - nxt).mean(axis=-1)
    best, best_score = None, PARTIAL_MIN_CHANGE
    for _ in range(16):
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        score = float(diff[y : y + ph, x : x + pw].mean())
        if score >= best_score:
            best, best_score = (y, x), score
    if best is None:
        return None
    out = prev.copy()
    y, x = best
    out[y : y + ph, x : x + pw] = nxt[y : y + ph, x : x + pw]
    return out


def _flash(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = rng.uniform(0.6, 0.85)
    return (frame * (1 - k) + 255 * k).round().astype(np.uint8)


def compose(split: str, *, holds: bool, segments: int, seed: int, max_clips: int | None = None):
    """Clean frames, labels, partial flags, flash frames and clip names of one sequence."""
    names = split_names(split)[:max_clips]
    pool = [(n, s) for n in names for s in shots(n) if len(s) >= SEGMENT_DRAWINGS[0]]
    rng = np.random.default_rng([seed, ("tune", "heldout").index(split), int(holds)])
    frames: list[np.ndarray] = []
    labels: list[str] = []
    partial: list[bool] = []
    flashes: list[int] = []
    used: list[str] = []

    def emit(frame, label, is_partial=False):
        if frames:
            labels.append(label)
            partial.append(is_partial)
        frames.append(frame)

    last_clip = None
    for _ in range(segments):
        choices = [i for i, (n, _) in enumerate(pool) if n != last_clip]
        name, drawings = pool[int(rng.choice(choices))]
        n_draw = int(rng.integers(SEGMENT_DRAWINGS[0], SEGMENT_DRAWINGS[1] + 1))
        start = int(rng.integers(0, max(1, len(drawings) - n_draw + 1)))
        seq = drawings[start : start + n_draw]
        if frames and rng.random() < FLASH_P:  # flash at the boundary: white or one-frame insert
            others = [i for i, (n, _) in enumerate(pool) if n not in (last_clip, name)]
            if rng.random() < 0.5 or not others:
                emit(_flash(frames[-1], rng), "cut")
            else:
                ins = pool[int(rng.choice(others))][1]
                emit(ins[int(rng.integers(0, len(ins)))], "cut")
            flashes.append(len(frames) - 1)
        flash_at = int(rng.integers(1, len(seq))) if rng.random() < FLASH_P and len(seq) > 1 else -1
        shown = seq[0]
        for j in range(len(seq)):
            if j == 0:
                emit(shown, "cut")
            else:
                change = "motion"
                part = _partial(shown, seq[j], rng) if rng.random() < PARTIAL_P else None
                is_partial = part is not None
                shown = part if is_partial else seq[j]
                emit(shown, change, is_partial)
            if j == flash_at:
                emit(_flash(shown, rng), "cut")
                flashes.append(len(frames) - 1)
                emit(shown, "cut")
            reps = int(rng.choice(3, p=HOLD_P)) if holds else 0
            for _ in range(reps):
                emit(shown, "hold")
        last_clip = name
        used.append(name)
    return np.stack(frames), tuple(labels), tuple(partial), tuple(flashes), tuple(used)


def add_noise(frames: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """Per-frame noise model of ``variant`` (see the module doc)."""
    if variant == "lossless":
        return frames
    out = np.empty_like(frames)
    h, w = frames.shape[1:3]
    for i, f in enumerate(frames):
        if variant == "jpeg":
            q = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
            ok, buf = cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
            continue
        white, corr, gain, jitter = NOISE["gen" if variant == "control" else variant]
        x = f.astype(np.float32)
        if jitter:
            m = np.float32([[1, 0, rng.uniform(-jitter, jitter)], [0, 1, rng.uniform(-jitter, jitter)]])
            x = cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        low = rng.standard_normal((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        low = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
        low *= corr / max(float(low.std()), 1e-6)
        x = x * (1.0 + rng.normal(0, gain)) + low[..., None] + rng.normal(0, white, x.shape).astype(np.float32)
        out[i] = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return out


def build(
    split: str = "heldout",
    variant: str = "lossless",
    *,
    segments: int = SEGMENTS,
    max_clips: int | None = None,
    seed: int = SEED,
    upscale: int = 1,
) -> Sequence:
    """One frozen ground-truth sequence (see the module doc).

    ``upscale`` > 1 (an addition after the freeze, for the analysis path of large frames):
    the same composition and labels, each clean frame enlarged that many times (bicubic;
    4 gives 1280x960) before the variant's noise, which is then added at the large size."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if upscale < 1:
        raise ValueError(f"upscale must be >= 1, got {upscale}")
    frames, labels, partial, flashes, used = compose(
        split, holds=variant != "control", segments=segments, seed=seed, max_clips=max_clips
    )
    if upscale > 1:
        size = (frames.shape[2] * upscale, frames.shape[1] * upscale)
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames])
    rng = np.random.default_rng([seed, ("tune", "heldout").index(split), 1 + VARIANTS.index(variant)])
    return Sequence(add_noise(frames, variant, rng), labels, partial, flashes, variant, split, used)
