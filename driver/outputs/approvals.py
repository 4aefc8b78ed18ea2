"""``approvals.json`` in the run folder: the producer's verdicts on each shot's keyframes
and on its clip, written by the review app (``python -m driver review``) and by the driver.

Format (``version`` counts the writes; every writer checks it)::

    {"version": 7,
     "shots": {"S01T02": {"keyframes": {"verdict": "approve", "note": "", "by": "mika",
                                        "at": "2026-12-03T10:00:00Z"},
                          "video": {"verdict": "retake", "note": "hair pops at 1.2 s", ...}}}}

The first format (a plain string per shot, or ``{"verdict", "note"}``, meaning its
keyframes) is still read, as version 0; the next write turns it into this one.

Verdicts: ``approve``; ``retake`` (keyframes: rendered again with a new seed on the next
``--stage video``, or, for storyboard images, the shot is reported as needing a new image;
clip: rendered again with a new seed, its old attempts kept); ``pending`` and
``needs_review`` (the shot waits). The driver adds a ``pending`` keyframes entry for every
shot whose keyframes it renders and resets an entry to ``pending`` whenever what it judged
changed.

Writes are atomic and versioned under a short lock (``approvals.json.lock``, ``flock``):
:func:`write_verdict` (the review app) refuses a write based on a version that is no longer
the file's (:class:`StaleApprovals`); the driver's :meth:`Approvals.save` re-reads the file
under the lock and applies only its own changes to it, so neither overwrites the other."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import getpass
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from driver.errors import ConfigError, StaleApprovals
from driver.files import atomic_write_json
from driver.validation import raise_if_problems, schema_problems

APPROVALS_NAME = "approvals.json"
APPROVE, RETAKE, PENDING, NEEDS_REVIEW = "approve", "retake", "pending", "needs_review"
VERDICTS = (APPROVE, RETAKE, PENDING, NEEDS_REVIEW)
KEYFRAMES, VIDEO = "keyframes", "video"
KINDS = (KEYFRAMES, VIDEO)
SHOT_ID = "^S[0-9]{2}T[0-9]{2}$"

_ENTRY = {"type": "object", "required": ["verdict"], "additionalProperties": False,
          "properties": {"verdict": {"enum": list(VERDICTS)}, "note": {"type": "string"},
                         "by": {"type": "string"}, "at": {"type": "string"}}}
SCHEMA = {"type": "object", "required": ["version", "shots"], "additionalProperties": False,
          "properties": {
              "version": {"type": "integer", "minimum": 0},
              "shots": {"type": "object", "propertyNames": {"pattern": SHOT_ID},
                        "additionalProperties": {"type": "object", "additionalProperties": False,
                                                 "properties": {k: _ENTRY for k in KINDS}}}}}
OLD_SCHEMA = {  # version 0: shot -> keyframes verdict
    "type": "object", "propertyNames": {"pattern": SHOT_ID},
    "additionalProperties": {"oneOf": [
        {"enum": list(VERDICTS)},
        {"type": "object", "required": ["verdict"], "additionalProperties": False,
         "properties": {"verdict": {"enum": list(VERDICTS)}, "note": {"type": "string"}}}]},
}

Doc = dict[str, Any]


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def read_doc(path: Path) -> Doc:
    """The file's content in the current shape (``{"version": 0, "shots": {}}`` when absent);
    a file that is not valid JSON or not in either shape is refused with its path and line."""
    if not path.exists():
        return {"version": 0, "shots": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; fix or move it away, it is left as it is") from None
    except ValueError as exc:
        line = f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"{path}{line}: not valid JSON ({exc}); fix or move it away, it is left as it is") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if isinstance(doc, dict) and "version" in doc and "shots" in doc:
        raise_if_problems(schema_problems(doc, SCHEMA), str(path))
        return doc
    raise_if_problems(schema_problems(doc, OLD_SCHEMA), str(path))
    shots = {sid: {KEYFRAMES: {"verdict": v} if isinstance(v, str) else dict(v)} for sid, v in doc.items()}
    return {"version": 0, "shots": shots}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """A short exclusive lock beside the file (held only around a read-check-write)."""
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _update(path: Path, change: Callable[[Doc], None], expected: int | None = None) -> Doc:
    with _locked(path):
        doc = read_doc(path)
        if expected is not None and doc["version"] != expected:
            raise StaleApprovals(f"{path} changed since version {expected} was read (now version "
                                 f"{doc['version']}); reload and decide again", current=doc["version"])
        change(doc)
        doc["version"] += 1
        doc["shots"] = dict(sorted(doc["shots"].items()))
        atomic_write_json(path, doc)
        return doc


def _entry(verdict: str, note: str | None, by: str | None) -> dict:
    return {"verdict": verdict, "note": note or "", "by": by or default_reviewer(), "at": utc_now()}


def write_verdict(run_dir: Path, sid: str, kind: str, verdict: str, *, expected: int, note: str = "",
                  by: str | None = None) -> Doc:
    """The review app's write: refused when the file is no longer at version ``expected``."""
    if kind not in KINDS or verdict not in VERDICTS:
        raise ConfigError(f"unknown verdict {kind!r}={verdict!r}: kinds are {', '.join(KINDS)}, "
                          f"verdicts {', '.join(VERDICTS)}")
    return _update(Path(run_dir) / APPROVALS_NAME,
                   lambda doc: doc["shots"].setdefault(sid, {}).__setitem__(kind, _entry(verdict, note, by)),
                   expected)


class Approvals:
    """The verdicts as the driver read them, and the changes it makes (applied to the
    file as it is at :meth:`save`, under the lock)."""

    def __init__(self, path: Path, doc: Doc):
        self.path = Path(path)
        self.doc = doc
        self._changes: list[tuple[str, str, str]] = []

    @classmethod
    def load(cls, run_dir: Path) -> Approvals:
        path = Path(run_dir) / APPROVALS_NAME
        return cls(path, read_doc(path))

    @property
    def version(self) -> int:
        return self.doc["version"]

    @property
    def entries(self) -> dict[str, dict]:
        return self.doc["shots"]

    def entry(self, sid: str, kind: str = KEYFRAMES) -> dict:
        return (self.entries.get(sid) or {}).get(kind) or {}

    def verdict(self, sid: str, kind: str = KEYFRAMES) -> str:
        return self.entry(sid, kind).get("verdict", PENDING)

    def note(self, sid: str, kind: str = KEYFRAMES) -> str:
        return self.entry(sid, kind).get("note", "")

    def has(self, sid: str, kind: str = KEYFRAMES) -> bool:
        return bool(self.entry(sid, kind))

    def set(self, sid: str, verdict: str, kind: str = KEYFRAMES) -> None:
        """The driver's change (the note is kept: it says what the producer asked for)."""
        self._apply(self.doc, (sid, kind, verdict))
        self._changes.append((sid, kind, verdict))

    def ensure(self, sid: str, kind: str = KEYFRAMES) -> None:
        if not self.has(sid, kind):
            self.set(sid, PENDING, kind)

    @staticmethod
    def _apply(doc: Doc, change: tuple[str, str, str]) -> None:
        sid, kind, verdict = change
        old = (doc["shots"].get(sid) or {}).get(kind) or {}
        doc["shots"].setdefault(sid, {})[kind] = _entry(verdict, old.get("note"), "driver")

    def save(self) -> None:
        """Apply this run's changes to the file as it is now (a reviewer may have written
        since it was read); nothing to write when nothing changed."""
        if not self._changes and self.path.exists():
            return
        changes, self._changes = self._changes, []
        def apply(doc: Doc) -> None:
            for c in changes:
                self._apply(doc, c)
        self.doc = _update(self.path, apply)
