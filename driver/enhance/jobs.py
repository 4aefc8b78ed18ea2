"""An enhance chunk as the executors' job: :class:`ChunkJob` / :class:`ChunkAttempt` satisfy
``driver.render.attempt.JobRef`` / ``Attempt``, so one server, the farm's pool (with its
failover) and RunPod Serverless run chunks exactly as they run storyboard jobs.

A chunk's attempt is its workflow (``render.bind``) with the uploaded chunk's name; its
one output, the ``Chunk Out`` node, has the role ``video`` so every executor checks the
downloaded file's frame count against the chunk's ``n_rendered`` (every output frame, or
only the interpolated ones without an upscale model) before it is recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from driver.render.workflow import find

from .plan import Chunk
from .render import ChunkSettings, bind

ROLE = "video"  # the chunk file's output role (executors verify a video's frame count)
INPUT_ROLE = "chunk"


@dataclass(frozen=True)
class ChunkJob:
    id: str  # "<work folder name>/c00003": unique across the inputs of one command
    shot: str  # "<input file name> chunk 3", for messages
    frames: int  # frames the returned chunk file must have (the chunk's n_rendered)


@dataclass(frozen=True)
class ChunkAttempt:
    job: ChunkJob
    prompt: dict
    prompt_id: str
    outputs: dict[str, str]  # the Chunk Out node id -> ROLE


def chunk_job(label: str, run_id: str, chunk: Chunk) -> ChunkJob:
    return ChunkJob(f"{run_id}/c{chunk.index:05d}", f"{label} chunk {chunk.index}", chunk.n_rendered)


def chunk_attempt(template: dict, job: ChunkJob, chunk: Chunk, upload: str, letters: str,
                  settings: ChunkSettings) -> ChunkAttempt:
    """A fresh attempt (new prompt id) of ``chunk``, whose file the backend knows as ``upload``."""
    prompt = bind(template, chunk, upload, letters, settings)
    (out,) = find(prompt, "Chunk Out")
    return ChunkAttempt(job, prompt, uuid.uuid4().hex, {out: ROLE})
