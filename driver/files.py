"""Files the driver writes and checks: atomic writes (readers see the old or the new
file, never a part), sha256 hashes and the ``{"path", "sha256", "bytes"}`` records the
manifest keeps of every file it names. Imports nothing of the driver."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict


class FileRecord(TypedDict, total=False):
    path: str        # relative to the run folder
    sha256: str
    bytes: int
    role: str        # outputs of an attempt
    source: str      # storyboard images copied into the run folder
    attempt: int     # assets: the attempt that made it
    job: str


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(run_dir: Path, path: Path) -> FileRecord:
    path = Path(path)
    return FileRecord(path=path.relative_to(run_dir).as_posix(), sha256=sha256_file(path), bytes=path.stat().st_size)


def file_intact(run_dir: Path, record: Any) -> bool:
    """True when the recorded file exists in the run folder with the recorded sha256."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return False
    path = run_dir / record["path"]
    try:
        return path.is_file() and path.stat().st_size == record["bytes"] and sha256_file(path) == record["sha256"]
    except (OSError, KeyError, TypeError):  # a record without its size or hash: not intact
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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno and not exc.filename:  # a failed write names no file: name it
            exc.filename = str(path)
        raise
    return path


def _read_umask() -> int:
    """Reading the umask means setting it: done once, at import, before any thread runs."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def remove_stale_parts(folder: Path, skip: tuple[str, ...] = (".comfyui",)) -> list[Path]:
    """Remove the temporary files (``.<name>.*.part``, ``.<name>.*.part.mp4``) a killed
    writer left in ``folder`` and below (not in ``skip``: a local ComfyUI's base folder).
    Call it only while holding the folder's lock: no other writer's parts are then live."""
    removed = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name.startswith(".") and (name.endswith(".part") or ".part." in name):
                path = Path(root) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def atomic_write_json(path: Path, doc: Any, *, compact: bool = False) -> None:
    """``compact`` uses the C encoder (no indentation): for the manifest, which is
    rewritten after every change and holds every submitted workflow."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) if compact else \
        json.dumps(doc, indent=1, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
