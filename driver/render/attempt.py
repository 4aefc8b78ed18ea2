"""What an executor runs: an :class:`Attempt` of a job, typed by structure.

A storyboard attempt (:class:`driver.render.compile.Compiled` of a ``Job``) and an enhance
chunk's attempt (``driver.enhance.jobs.ChunkAttempt``) both satisfy it, so the one-server
executor, the farm's pool with its failover and RunPod Serverless carry either without
knowing which (no attribute probing: mypy checks each against these protocols)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from driver.comfy.client import ComfyClient


class JobRef(Protocol):
    """What an executor reads of the job an attempt belongs to."""

    @property
    def id(self) -> str: ...  # unique in the run: the pool's priorities, log lines

    @property
    def shot(self) -> str: ...  # who an error is about (a shot id, or an input's chunk)

    @property
    def frames(self) -> int | None: ...  # frames a ``video`` output must have (None: not checked)


class Attempt(Protocol):
    """One submission of a job: the API-format workflow, its prompt id and its output nodes."""

    @property
    def job(self) -> JobRef: ...

    @property
    def prompt(self) -> dict: ...

    @property
    def prompt_id(self) -> str: ...

    @property
    def outputs(self) -> dict[str, str]: ...  # output node id -> role ("video", "report", ...)


@dataclass(frozen=True)
class Limits:
    """What one job may send to a backend and hold there; None: no known limit.
    ``where`` names the backend and the limit for messages."""

    upload_bytes: int | None = None  # one input file (ComfyUI's --max-upload-size, 100 MB by default)
    body_bytes: int | None = None  # one request with its inputs inside, base64 (RunPod Serverless /run)
    result_bytes: int | None = None  # one result with its outputs inside, base64 (RunPod Serverless)
    memory_bytes: int | None = None  # free memory for a job's frames (VRAM, else RAM)
    where: str = ""

    def tighter(self, other: Limits) -> Limits:
        """The smaller of each limit (a pool's job must fit every member it may land on)."""
        def low(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return Limits(low(self.upload_bytes, other.upload_bytes), low(self.body_bytes, other.body_bytes),
                      low(self.result_bytes, other.result_bytes), low(self.memory_bytes, other.memory_bytes),
                      "; ".join(w for w in (self.where, other.where) if w))


DEFAULT_UPLOAD = 100 << 20  # ComfyUI's default --max-upload-size


def server_limits(client: ComfyClient) -> Limits:
    """A ComfyUI server's upload limit (``/features``, else ComfyUI's default) and free memory
    (the largest GPU's free VRAM, else free RAM)."""
    upload = int(client.features().get("max_upload_size") or DEFAULT_UPLOAD)  # {} from an older server
    stats = client.system_stats()
    free = [d.get("vram_free") or 0 for d in stats.get("devices", []) if d.get("type") != "cpu"]
    free = free or [stats.get("system", {}).get("ram_free") or 0]
    return Limits(upload_bytes=upload, memory_bytes=max(free) or None,
                  where=f"{client.url} (uploads up to {upload / 2**20:.0f} MB)")
