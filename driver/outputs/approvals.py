"""``approvals.json`` in the run folder: the producer's verdict on each shot's keyframes.

Format: a JSON object mapping shot ids to a verdict, optionally with a note::

    {"S01T01": "approve",
     "S02T01": {"verdict": "retake", "note": "face off-model"},
     "S03T02": "pending"}

``approve``: ``--stage video`` renders the shot's video from these keyframes.
``retake``: ``--stage video`` re-renders the shot's keyframes with a new seed, then sets
the entry back to ``pending`` for the producer to judge the new ones.
``pending`` (or no entry): the shot waits. The driver adds a ``pending`` entry for every
shot whose keyframes it renders, and resets an entry to ``pending`` whenever a shot's
keyframes change. The file is written atomically and read before every stage."""

from __future__ import annotations

import json
from pathlib import Path

from driver.errors import ConfigError
from driver.files import atomic_write_json
from driver.validation import raise_if_problems, schema_problems

APPROVALS_NAME = "approvals.json"
APPROVE, RETAKE, PENDING = "approve", "retake", "pending"
VERDICTS = (APPROVE, RETAKE, PENDING)

SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": "^S[0-9]{2}T[0-9]{2}$"},
    "additionalProperties": {"oneOf": [
        {"enum": list(VERDICTS)},
        {"type": "object", "required": ["verdict"], "additionalProperties": False,
         "properties": {"verdict": {"enum": list(VERDICTS)}, "note": {"type": "string"}}},
    ]},
}


class Approvals:
    def __init__(self, path: Path, entries: dict):
        self.path = Path(path)
        self.entries = entries

    @classmethod
    def load(cls, run_dir: Path) -> Approvals:
        path = Path(run_dir) / APPROVALS_NAME
        if not path.exists():
            return cls(path, {})
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        raise_if_problems(schema_problems(doc, SCHEMA), str(path))
        return cls(path, doc)

    def verdict(self, sid: str) -> str:
        v = self.entries.get(sid, PENDING)
        return v["verdict"] if isinstance(v, dict) else v

    def note(self, sid: str) -> str:
        v = self.entries.get(sid)
        return v.get("note", "") if isinstance(v, dict) else ""

    def set(self, sid: str, verdict: str) -> None:
        note = self.note(sid)
        self.entries[sid] = {"verdict": verdict, "note": note} if note else verdict

    def ensure(self, sid: str) -> None:
        self.entries.setdefault(sid, PENDING)

    def save(self) -> None:
        atomic_write_json(self.path, dict(sorted(self.entries.items())))
