"""``run_manifest.json``: everything needed to reproduce and resume a run, written
atomically (temp file, fsync, rename) after every change.

Layout (the records are typed in :mod:`driver.outputs.records`, which also keeps the format's
history)::

    {"manifest_version": 4, "run_id", "created_at", "updated_at",
     "driver": {"version", "git_commit", "python"},
     "storyboard": {"path", "sha256", "project", "episode"},
     "config": {"sha256", "data"},
     "shots": {"S01T01": {"approach", "status", "error", "keyframe_round", "assets": {role: file},
               "jobs": {"S01T01-video": {"stage", "template", "spec_sha256", "status", "selected_attempt",
                                          "retake_from", "attempts": [attempt, ...]}}}},
     "episode": {"cut": file, "dailies": "dailies.html"}, "farm": {...}}

    attempt = {"attempt", "seed", "prompt_id", "server", "client_id", "workflow_sha256", "workflow_file": file,
               "inputs": [{"role", "source", "sha256", "uploaded_as"}], "outputs": [file + role],
               "timings": {"queue_s", "execution_s", "download_s", "wall_s"},
               "gate_report", "report_file", "passed", "score", "status", "error", "started_at", "finished_at",
               "loaders": {"ran": [node id, ...], "cached": [node id, ...]}}   # loaders: version 4, optional
    file = {"path" (relative to the run folder), "sha256", "bytes"}

Statuses (:class:`driver.outputs.records.Status`): job/attempt ``pending`` -> ``submitted`` ->
``done`` | ``failed`` | ``gate_failed``; a job whose every attempt failed its gates is
``quality_failed``; a shot is ``pending``, ``keyframes_done``, ``done``, ``failed`` or
``awaiting_review``.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any, cast

from driver import __version__
from driver.errors import ConfigError
from driver.files import atomic_write_json, now
from driver.validation import parse_json, schema_problems

from .records import (
    MANIFEST_VERSION,
    READ_SCHEMA,
    READABLE_VERSIONS,
    AttemptRecord,
    JobRecord,
    ManifestData,
    ShotRecord,
    Status,
)

MANIFEST_NAME = "run_manifest.json"


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


class Manifest:
    """The run's manifest, held in memory and saved atomically by :meth:`save`."""

    def __init__(self, path: Path, data: ManifestData):
        self.path = Path(path)
        self.data = data

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @classmethod
    def load(cls, run_dir: Path) -> Manifest | None:
        path = Path(run_dir) / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; move it away to start the run afresh"
                              ) from None
        data = parse_json(raw, f"cannot read {path}")
        version = data.get("manifest_version") if isinstance(data, dict) else None
        if version not in READABLE_VERSIONS and isinstance(version, int):
            raise ConfigError(f"{path} has manifest_version {version!r}; this driver reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))} and writes {MANIFEST_VERSION}")
        problems = schema_problems(data, READ_SCHEMA)
        if problems:
            raise ConfigError(f"{path} is not a run manifest this driver can read: {'; '.join(problems[:5])}; "
                              "move it away to start the run afresh", problems=problems)
        for shot in data["shots"].values():
            shot.setdefault("assets", {})
            shot.setdefault("jobs", {})
        data["manifest_version"] = MANIFEST_VERSION  # every earlier version is a subset: see driver.outputs.records
        return cls(path, cast(ManifestData, data))

    @classmethod
    def open(cls, run_dir: Path, *, run_id: str, storyboard, config, repo: Path) -> Manifest:
        """Load the run folder's manifest, or start one. The storyboard and config
        records always describe the latest invocation."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        m = cls.load(run_dir) or cls(run_dir / MANIFEST_NAME, ManifestData(
            manifest_version=MANIFEST_VERSION, run_id=run_id, created_at=now(), shots={}, episode={}))
        m.data["driver"] = {"version": __version__, "git_commit": git_commit(repo), "python": platform.python_version()}
        m.data["storyboard"] = {"path": str(storyboard.path), "sha256": storyboard.sha256,
                                "project": storyboard.project, "episode": storyboard.episode}
        m.data["config"] = {"sha256": config.sha256, "source": str(config.source) if config.source else None,
                            "data": config.data}
        return m

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    def save(self) -> None:
        self.data["updated_at"] = now()
        atomic_write_json(self.path, self.data, compact=True)

    # ------------------------------------------------------------------ records
    def shot(self, sid: str, approach: str | None = None) -> ShotRecord:
        rec = self.data["shots"].setdefault(sid, ShotRecord(status=Status.PENDING, error=None, keyframe_round=1,
                                                            assets={}, jobs={}))
        if approach:
            rec["approach"] = approach
        return rec

    def job(self, sid: str, job) -> JobRecord:
        rec = self.shot(sid)["jobs"].setdefault(job.id, JobRecord(attempts=[]))
        rec.update({"stage": job.stage, "template": job.template})
        rec.setdefault("status", Status.PENDING)
        return rec

    def job_record(self, sid: str, job_id: str) -> JobRecord | None:
        shot = self.data["shots"].get(sid)
        return shot.get("jobs", {}).get(job_id) if shot else None

    def keyframe_rounds(self) -> dict[str, int]:
        return {sid: rec.get("keyframe_round", 1) for sid, rec in self.data["shots"].items()}

    # ------------------------------------------------------------------ workflows
    def workflow_path(self, job_id: str, attempt: int, sha256: str) -> Path:
        """Where an attempt's submitted workflow is kept (beside its outputs; the hash
        keeps a superseded attempt's file when the job's workflow changes)."""
        return self.run_dir / "attempts" / f"{job_id}_a{attempt}_{sha256[:8]}.workflow.json"

    def workflow(self, att: AttemptRecord) -> dict[str, Any] | None:
        """The workflow an attempt submitted: its file (version 2) or inline (version 1)."""
        if "workflow" in att:
            return att["workflow"]
        ref = att.get("workflow_file")
        return json.loads((self.run_dir / ref["path"]).read_text(encoding="utf-8")) if ref else None
