"""Chunks sized for the backend they render on.

Each backend says what one job may send and hold (``Executor.limits``): a ComfyUI server
takes uploads up to its ``--max-upload-size`` (100 MB by default) and has so much free
memory; a RunPod Serverless endpoint takes ``/run`` bodies of about 10 MB with the chunk
inside, base64 (4/3 of its size), and returns results of about 20 MB unless it has an S3
bucket. A chunk's file must fit the tightest of these; the output chunk grows with the
frame-rate ratio and the scale squared. A chunk of the fewest frames that still does not
fit is :class:`~driver.enhance.errors.ChunkTooLarge`, naming the limit."""

from __future__ import annotations

from dataclasses import dataclass

from driver.farm.backend import FarmOptions
from driver.render.attempt import DEFAULT_UPLOAD, Limits

from .errors import ChunkTooLarge
from .plan import Budget

DEFAULT_MEMORY = 4 << 30  # bytes of frames per chunk when neither the option nor the server says
WORKFLOW_BYTES = 64 << 10  # room in a request body for the chunk's workflow (template + labels)
MIN_SOURCE_FRAMES = 2  # the smallest chunk: one interval of source frames


@dataclass(frozen=True)
class ChunkLimits:
    memory: int  # bytes of float32 frames in and out per chunk on the server
    upload: int  # bytes of one source chunk file
    where: str  # the limit that decided ``upload``


def planned_limits(fo: FarmOptions) -> Limits:
    """What a dry run assumes of the backend the options name (nothing is contacted)."""
    if fo.endpoint:
        from driver.farm.worker_outputs import RESULT_LIMIT

        return Limits(body_bytes=fo.endpoint_payload_bytes, result_bytes=None if fo.endpoint_bucket else RESULT_LIMIT,
                      where=f"RunPod Serverless {fo.endpoint}")
    return Limits(upload_bytes=DEFAULT_UPLOAD, where="ComfyUI's default upload limit")


def chunk_limits(limits: Limits, *, memory_budget_gb: float | None, growth: float) -> ChunkLimits:
    """``growth``: bytes of output chunk per byte of source chunk (fps ratio x scale squared)."""
    if memory_budget_gb:
        memory = int(memory_budget_gb * (1 << 30))
    else:
        memory = limits.memory_bytes // 2 if limits.memory_bytes else DEFAULT_MEMORY
    where = limits.where or "the backend"
    options = [(DEFAULT_UPLOAD if limits.upload_bytes is None else limits.upload_bytes,
                f"the upload limit of {where}")]
    if limits.body_bytes is not None:
        options.append(((limits.body_bytes - WORKFLOW_BYTES) * 3 // 4,
                        f"the request limit of {where} (the chunk travels base64 in the body)"))
    if limits.result_bytes is not None:
        options.append((int(limits.result_bytes * 3 / 4 / max(growth, 1.0)),
                        f"the result limit of {where} (the rendered chunk, {growth:.1f}x the source chunk, "
                        "comes back base64; an endpoint with an S3 bucket has none: --endpoint-bucket)"))
    upload, why = min(options)
    return ChunkLimits(memory, max(0, upload), why)


def check_fits(label: str, budget: Budget, limits: ChunkLimits) -> None:
    """ChunkTooLarge when even the smallest chunk's file passes ``limits.upload``."""
    need = MIN_SOURCE_FRAMES * budget.file_frame_bytes
    if need > limits.upload:
        raise ChunkTooLarge(
            f"{label}: the smallest chunk ({MIN_SOURCE_FRAMES} source frames, ~{need / 1e6:.2f} MB as a lossless "
            f"chunk file) does not fit {limits.where}: {limits.upload / 1e6:.2f} MB per chunk; render on ComfyUI "
            "servers or pods (--server, --farm runpod) instead")
