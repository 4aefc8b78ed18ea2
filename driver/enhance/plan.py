"""The labels of the whole input and the chunks it is rendered in (pure arithmetic apart
from :func:`analyse`, which decodes).

Cuts and holds are decided once, for the whole input, with the pack's classifier on
downscaled frames: scores are computed window by window (the classifier's intervals are
independent) and the decision, whose adaptive hold threshold is a whole-clip statistic,
runs once on all of them, so every chunk uses the same labels.

Output frame ``k`` sits at source position ``k * fps_in / fps_out`` (``core.retime``).
Chunks are runs of output frames: a new chunk starts at every cut and wherever the
frames in and out would pass the memory budget or the upload limit. A chunk's source
frames are all the frames its outputs are made from (a boundary inside a shot shares
the frames its interpolation needs with the chunk before), and it is retimed with its
phase (``frame_offset`` / ``output_offset``), so the chunks together give exactly the
frames of a one-chunk run.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from anime_pipeline.core import motion
from anime_pipeline.core.chunkio import write_chunk
from anime_pipeline.core.retime import Step, plan, rational

from .errors import OptionsInvalid
from .probe import FrameSource, VideoProbe

ANALYSIS_LONG_SIDE = 320  # px: frames are decoded this size for the classifier
WINDOW = 256  # frames scored together (memory: 256 x 320 x 180 x 3 bytes = 44 MB)
FLOAT_BYTES = 4 * 3  # an IMAGE pixel in ComfyUI: float32 RGB
UPLOAD_SAFETY = 1.5  # the compressed size of the first frames times this, for the upload limit


def analysis_size(info: VideoProbe) -> tuple[int, int]:
    s = min(1.0, ANALYSIS_LONG_SIDE / max(info.width, info.height))
    return max(16, round(info.width * s / 2) * 2), max(16, round(info.height * s / 2) * 2)


def analyse(info: VideoProbe, thresholds: motion.Thresholds, *, start: int = 0, stop: int | None = None,
            skip_errors: bool = False) -> tuple[tuple[str, ...], int, list]:
    """(labels, frame count, repairs) of frames ``start .. stop - 1`` of the input."""
    source = FrameSource(info, size=analysis_size(info), skip_errors=skip_errors, start=start, stop=stop)
    parts: dict[str, list[np.ndarray]] = {}
    window: list[np.ndarray] = []
    n = 0

    def score(frames: list[np.ndarray]) -> None:
        for name, values in motion.interval_scores(np.stack(frames), thresholds).items():
            parts.setdefault(name, []).append(values)

    for frame in source:
        window.append(frame)
        n += 1
        if len(window) == WINDOW + 1:
            score(window)
            window = window[-1:]  # the next window starts with this window's last frame
    if len(window) > 1:
        score(window)
    if n == 0:
        raise OptionsInvalid(f"{info.path}: no frame in the selected range")
    if n == 1:
        return (), 1, source.repairs
    scores = {name: np.concatenate(values) for name, values in parts.items()}
    labels, _ = motion.decide(scores, thresholds, downscale=motion.analysis_downscale(info.height, info.width))
    return tuple(labels), n, source.repairs


def total_outputs(n: int, fps_in: Fraction, fps_out: Fraction) -> int:
    """Output frames for ``n`` input frames: ``round(n * fps_out / fps_in)`` (halves up), so
    the output lasts as long as the input."""
    return math.floor(n * fps_out / fps_in + Fraction(1, 2))


@dataclass(frozen=True)
class Chunk:
    index: int
    first_out: int  # global index of its first output frame
    n_out: int
    src_lo: int  # its source frames: src_lo .. src_hi (inclusive)
    src_hi: int
    shot: int
    n_rendered: int  # frames the server returns: every output, or only the interpolated ones

    @property
    def n_src(self) -> int:
        return self.src_hi - self.src_lo + 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Budget:
    """Limits one chunk must fit: ``memory`` bytes of what the server holds for it, ``upload``
    bytes of the chunk file, and an explicit frame cap (0 = none).

    The server's memory for a chunk of ``n_src`` source and ``n_out`` rendered frames is
    modelled as ``n_src * in_frame_bytes + n_out * out_frame_bytes + fixed_bytes``: per
    source frame its float32 IMAGE, the 8/16-bit frame it was decoded from and the 8-bit
    copy the optical-flow interpolator works on (freed memory is not always handed back to
    the system, so the two are counted side by side), per rendered
    frame its float32 IMAGE (at the upscaled size, plus the retimed frame it came from, when
    a model upscales on the server), and per chunk the interpolation workers' buffers and one
    frame being converted while the chunk is saved (see :func:`make_budget`)."""

    memory: int
    upload: int
    in_frame_bytes: int
    out_frame_bytes: int
    file_frame_bytes: int  # estimated bytes of one source frame in a chunk file
    max_frames: int = 0
    fixed_bytes: int = 0

    def needs(self, n_src: int, n_out: int) -> int:
        """Modelled server bytes of a chunk."""
        return n_src * self.in_frame_bytes + n_out * self.out_frame_bytes + self.fixed_bytes

    def fits(self, n_src: int, n_out: int) -> bool:
        if self.max_frames and n_src > self.max_frames:
            return False
        return self.needs(n_src, n_out) <= self.memory and n_src * self.file_frame_bytes <= self.upload


#: Bytes per source pixel each interpolation worker holds at once (two uint8 sources and their
#: RGBA copies, two warped RGBA frames per flow estimate and their means, the float luma planes
#: of the bad mid-frame check), and the workers a server runs (``core.retime.WORKERS``).
WORKER_BYTES_PER_PIXEL = 56
FRAME_CONVERT_BYTES = 3 * 4  # a frame converted (float -> 8/16 bits -> planar) while saving


def make_budget(info: VideoProbe, scale: int, memory: int, upload: int, max_frames: int = 0,
                file_frame_bytes: int | None = None, *, upscale_on_server: bool = True) -> Budget:
    """The chunk budget of a run: frames rendered at the output size when a model upscales on
    the server (the retimed frame kept beside it), at the source size otherwise (the final
    encode resizes)."""
    px = info.width * info.height
    stored = 2 if info.rgb_bits > 8 else 1  # bytes per channel of the decoded chunk frames
    out = px * FLOAT_BYTES * (scale * scale + 1 if upscale_on_server and scale > 1 else 1)
    saved = scale * scale if upscale_on_server else 1  # pixels of a frame Chunk Out converts, per source pixel
    fixed = px * (WORKER_BYTES_PER_PIXEL * retime_workers() + FRAME_CONVERT_BYTES * saved)
    return Budget(memory, upload, px * (FLOAT_BYTES + 3 * stored + 3), out,
                  file_frame_bytes or px * 3 * info.rgb_bits // 8, max_frames, fixed)


def retime_workers() -> int:
    from anime_pipeline.core.retime import WORKERS

    return WORKERS


def chunk_file_bytes(info: VideoProbe, frames: int = 3, *, raw: bool = False) -> int:
    """Estimated bytes per frame of a lossless chunk: the first frames encoded, x UPLOAD_SAFETY
    (a raw chunk: its exact frame size, plus a little for the container)."""
    if raw:
        return info.width * info.height * 3 * info.rgb_bits // 8 + 1024
    sample = [f for _, f in zip(range(frames), FrameSource(info), strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.mkv"
        write_chunk(path, iter(sample), info.fps, info.rgb_bits)
        size = path.stat().st_size
    return math.ceil(size / max(1, len(sample)) * UPLOAD_SAFETY)


def _span(steps: list[Step], n: int) -> tuple[int, int]:
    """Source frames ``lo .. hi`` the steps are made from: at least two (the gate needs an
    interval; an extra frame changes nothing, the chunk's phase places its outputs)."""
    lo = min(min(s.a for s in steps), math.floor(steps[0].position))
    hi = max(max(s.b for s in steps), math.ceil(steps[-1].position))
    if hi == lo:
        lo, hi = (lo - 1, hi) if lo > 0 else (lo, hi + 1)
    return lo, hi


def make_chunks(labels: tuple[str, ...], n: int, fps_in: Fraction, fps_out: Fraction, mode: str,
                budget: Budget, *, interpolated_only: bool = False) -> list[Chunk]:
    """Chunks of the retime's output frames: split at cuts and where ``budget`` would be passed.
    With ``interpolated_only`` the server returns only the interpolated frames (the copies are
    placed from the source when the output is assembled), so only those count as rendered."""
    if n < 2:
        raise OptionsInvalid(f"the input has {n} frame(s); retiming needs at least 2")
    steps = plan(n, fps_in, fps_out, labels, mode)[: total_outputs(n, fps_in, fps_out)]
    shot_of = np.concatenate([[0], np.cumsum([lab == "cut" for lab in labels])]).astype(int)
    chunks: list[Chunk] = []
    current: list[Step] = []

    def rendered(run: list[Step]) -> int:
        return sum(not s.is_copy for s in run) if interpolated_only else len(run)

    def close() -> None:
        lo, hi = _span(current, n)
        chunks.append(Chunk(len(chunks), current[0].k, len(current), lo, hi, int(shot_of[current[0].a]),
                            rendered(current)))

    for step in steps:
        if current:
            same_shot = shot_of[step.a] == shot_of[current[0].a]
            lo, hi = _span(current + [step], n)
            if same_shot and budget.fits(hi - lo + 1, rendered(current) + rendered([step])):
                current.append(step)
                continue
            close()
        lo, hi = _span([step], n)
        if not budget.fits(hi - lo + 1, rendered([step])):
            raise OptionsInvalid(f"one output frame needs more than the chunk budget ({budget.memory / 2**20:.0f} MB "
                                 f"of frames, {budget.upload / 2**20:.0f} MB upload): raise --memory-budget")
        current = [step]
    if current:
        close()
    return chunks


def fps_ratio_text(fps_in: Fraction, fps_out: Fraction) -> str:
    return f"{float(fps_in):.3f} -> {float(fps_out):.3f} fps (x{rational(float(fps_out)) / rational(float(fps_in))})"
