"""``run_manifest.json``: everything needed to reproduce and resume a run, written
atomically (temp file, fsync, rename) after every change.

Layout::

    {"manifest_version": 1, "run_id", "created_at", "updated_at",
     "driver": {"version", "git_commit", "python"},
     "storyboard": {"path", "sha256", "project", "episode"},
     "config": {"sha256", "data"},
     "shots": {"S01T01": {"approach", "status", "error", "keyframe_round", "assets": {role: file},
               "jobs": {"S01T01-video": {"stage", "template", "spec_sha256", "status", "selected_attempt",
                                          "attempts": [attempt, ...]}}}},
     "episode": {"cut": file, "dailies": "dailies.html"}}

    attempt = {"attempt", "seed", "prompt_id", "server", "client_id", "workflow_sha256", "workflow",
               "inputs": [{"role", "source", "sha256", "uploaded_as"}], "outputs": [file + role],
               "timings": {"queue_s", "execution_s", "download_s", "wall_s"},
               "gate_report", "passed", "score", "status", "error", "started_at", "finished_at"}
    file = {"path" (relative to the run folder), "sha256", "bytes"}

Statuses: job/attempt ``pending`` -> ``submitted`` -> ``done`` | ``failed``; a shot is
``pending``, ``keyframes_done``, ``done``, ``failed`` or ``awaiting_review``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import __version__
from .errors import ConfigError

MANIFEST_NAME = "run_manifest.json"
MANIFEST_VERSION = 1
PENDING, SUBMITTED, DONE, FAILED = "pending", "submitted", "done", "failed"
KEYFRAMES_DONE, AWAITING_REVIEW = "keyframes_done", "awaiting_review"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(run_dir: Path, path: Path) -> dict:
    path = Path(path)
    return {"path": path.relative_to(run_dir).as_posix(), "sha256": sha256_file(path), "bytes": path.stat().st_size}


def file_intact(run_dir: Path, record: dict | None) -> bool:
    """True when the recorded file exists in the run folder with the recorded sha256."""
    if not record:
        return False
    path = run_dir / record["path"]
    try:
        return path.is_file() and path.stat().st_size == record["bytes"] and sha256_file(path) == record["sha256"]
    except OSError:
        return False


_datasync = getattr(os, "fdatasync", os.fsync)  # data + size are what a rename needs


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old or the new file, never a part.

    The data is fsynced before the rename (no empty file after a power loss); the
    directory is not: after an OS crash the previous version may reappear, which a
    resume handles (it asks the server about anything recorded as in flight)."""
    atomic_write_chunks(path, [text.encode("utf-8")], sync=True)


def atomic_write_chunks(path: Path, chunks: Iterable[bytes], *, sync: bool = False) -> Path:
    """Write ``chunks`` to ``path`` through a temporary file of its own in the same folder,
    then rename: readers see the old or the new file, and two writers of the same path
    (a download finishing in a thread of an interrupted run while the rerun collects
    the same output) never share a temporary file. ``sync``: fsync before the rename.
    Outputs are written without it: a resume checks them by size and sha256."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the user's umask like any other
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            if sync:
                fh.flush()
                _datasync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_umask() -> int:
    """Reading the umask means setting it: done once, at import, before any thread runs."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_json(path: Path, doc, *, compact: bool = False) -> None:
    """``compact`` uses the C encoder (no indentation): for the manifest, which is
    rewritten after every change and holds every submitted workflow."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) if compact else \
        json.dumps(doc, indent=1, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


class Manifest:
    """The run's manifest, held in memory and saved atomically by :meth:`save`."""

    def __init__(self, path: Path, data: dict):
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
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}; move it away to start the run afresh") from None
        if data.get("manifest_version") != MANIFEST_VERSION:
            raise ConfigError(f"{path} has manifest_version {data.get('manifest_version')!r}; this driver writes "
                              f"{MANIFEST_VERSION}")
        return cls(path, data)

    @classmethod
    def open(cls, run_dir: Path, *, run_id: str, storyboard, config, repo: Path) -> Manifest:
        """Load the run folder's manifest, or start one. The storyboard and config
        records always describe the latest invocation."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        m = cls.load(run_dir) or cls(run_dir / MANIFEST_NAME, {
            "manifest_version": MANIFEST_VERSION, "run_id": run_id, "created_at": now(), "shots": {}, "episode": {}})
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
    def shot(self, sid: str, approach: str | None = None) -> dict:
        rec = self.data["shots"].setdefault(sid, {"status": PENDING, "error": None, "keyframe_round": 1,
                                                  "assets": {}, "jobs": {}})
        if approach:
            rec["approach"] = approach
        return rec

    def job(self, sid: str, job) -> dict:
        rec = self.shot(sid)["jobs"].setdefault(job.id, {"attempts": []})
        rec.update(stage=job.stage, template=job.template)
        rec.setdefault("status", PENDING)
        return rec

    def job_record(self, sid: str, job_id: str) -> dict | None:
        return (self.data["shots"].get(sid) or {}).get("jobs", {}).get(job_id)

    def keyframe_rounds(self) -> dict[str, int]:
        return {sid: rec.get("keyframe_round", 1) for sid, rec in self.data["shots"].items()}
