"""The run manifest's records, typed: one status enum for every state a job, an attempt
or a shot can be in, and the JSON shapes (TypedDicts: the file format stays plain JSON)
of files, attempts, jobs, shots and the manifest itself.

Format history (``manifest_version``; the driver reads every earlier version):

1. attempts carry the submitted workflow inline (``workflow``).
2. the workflow moved to a per-attempt file beside the outputs (``workflow_file``: a
   file record of ``attempts/<job id>_a<n>.workflow.json``); v1 attempts keep theirs
   inline until they are submitted again.
3. jobs may carry ``retake_from``: the first attempt of the series a reviewer's clip
   retake started (earlier attempts are kept and stay playable).
4. attempts rendered on a ComfyUI server may carry ``loaders``: which of the workflow's
   loader nodes ran (read their model files) and which came from ComfyUI's cache
   (its ``execution_cached`` event), node ids: ``{"ran": [...], "cached": [...]}``, so a
   run's real model loads can be compared with the estimate. Absent in earlier
   versions; null where the backend cannot tell (RunPod Serverless)."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypedDict

from driver.files import FileRecord

MANIFEST_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)


class Status(str, Enum):
    """Where a job, an attempt or a shot stands; stored as its value."""

    PENDING = "pending"                  # job, shot: not rendered yet (or changed since)
    SUBMITTED = "submitted"              # job, attempt: the server has (or may have) it
    DONE = "done"                        # job, attempt, shot
    FAILED = "failed"                    # job, attempt, shot
    GATE_FAILED = "gate_failed"          # attempt: rendered, its quality gates failed
    QUALITY_FAILED = "quality_failed"    # job: every attempt failed its gates; the best is kept
    KEYFRAMES_DONE = "keyframes_done"    # shot: keyframes rendered, video next
    AWAITING_REVIEW = "awaiting_review"  # shot: keyframes wait for an approve verdict

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


class InputRecord(TypedDict):
    role: str
    source: str
    sha256: str
    uploaded_as: str


class AttemptRecord(TypedDict, total=False):
    attempt: int
    submissions: int
    seed: int
    prompt_id: str
    server: str
    client_id: str
    workflow_sha256: str
    workflow_file: FileRecord | None        # version 2
    workflow: dict[str, Any]                # version 1 only
    inputs: list[InputRecord]
    outputs: list[FileRecord]
    timings: dict[str, float | None]
    gate_report: dict[str, Any] | None
    report_file: FileRecord | None
    passed: bool | None
    score: float | None
    status: Status
    error: dict[str, Any] | None
    started_at: str
    finished_at: str
    loaders: dict[str, list[str]] | None   # version 4: {"ran": [node ids], "cached": [node ids]}


class JobRecord(TypedDict, total=False):
    stage: str
    template: str
    spec_sha256: str
    status: Status
    selected_attempt: int | None
    retake_from: int                        # version 3
    attempts: list[AttemptRecord]
    superseded: list[dict[str, Any]]


class ShotRecord(TypedDict, total=False):
    approach: str
    status: Status
    error: dict[str, Any] | None
    keyframe_round: int
    assets: dict[str, FileRecord]
    jobs: dict[str, JobRecord]


class ManifestData(TypedDict, total=False):
    manifest_version: int
    run_id: str
    created_at: str
    updated_at: str
    driver: dict[str, Any]
    storyboard: dict[str, Any]
    config: dict[str, Any]
    shots: dict[str, ShotRecord]
    episode: dict[str, Any]
    farm: dict[str, Any]


_FILE = {"type": "object",
         "properties": {"path": {"type": "string", "minLength": 1}, "sha256": {"type": "string"},
                        "bytes": {"type": "integer", "minimum": 0}}}
_ATTEMPT = {"type": "object", "properties": {
    "attempt": {"type": "integer", "minimum": 1}, "prompt_id": {"type": "string"},
    "outputs": {"type": "array", "items": _FILE}, "inputs": {"type": "array", "items": {"type": "object"}},
    "workflow_file": {"oneOf": [{"type": "null"}, _FILE]}, "report_file": {"oneOf": [{"type": "null"}, _FILE]},
    "status": {"enum": [s.value for s in Status]}}}
_JOB = {"type": "object", "properties": {
    "attempts": {"type": "array", "items": _ATTEMPT}, "status": {"enum": [s.value for s in Status]},
    "selected_attempt": {"type": ["integer", "null"]}, "retake_from": {"type": "integer"}}}
#: The shape a manifest must have to be read (every version): the types of what the driver
#: indexes (a shot's missing ``assets`` / ``jobs`` are added empty on load). Other fields
#: are not checked; a manifest of another shape is refused with the JSON path.
READ_SCHEMA = {
    "type": "object", "required": ["manifest_version", "run_id", "shots"],
    "properties": {
        "manifest_version": {"enum": list(READABLE_VERSIONS)},
        "run_id": {"type": "string", "minLength": 1},
        "shots": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {
                "status": {"enum": [s.value for s in Status]}, "keyframe_round": {"type": "integer", "minimum": 1},
                "assets": {"type": "object", "additionalProperties": _FILE},
                "jobs": {"type": "object", "additionalProperties": _JOB}}}},
        "episode": {"type": "object", "properties": {"cut": {"oneOf": [{"type": "null"}, _FILE]}}},
    },
}
