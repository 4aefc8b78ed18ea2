"""One driver per folder: an advisory lock on a run folder (``driver run``) or an enhance
work folder (``driver enhance``), held for the whole command.

The lock is ``flock`` on ``<folder>/.driver.lock``; the file holds the holder's pid, host,
command and start time so the refusal can name them. The kernel drops an ``flock`` when its
process dies, so a lock left by a killed driver is taken over safely by the next one (the
file's old text is simply overwritten). The review app never takes this lock: it takes only
the short lock around ``approvals.json`` writes (``driver.outputs.approvals``).

Imports only the error base."""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driver.errors import DriverError

LOCK_NAME = ".driver.lock"


class FolderLocked(DriverError, code="folder_locked", exit_code=25, precedence=20):
    """Another driver holds the folder's lock (its pid and host are named)."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"pid {info.get('pid')} on {info.get('host')} "
                f"(`{info.get('command', '?')}`, since {info.get('started', '?')})")
    except (OSError, ValueError, AttributeError):
        return "another process (its lock file names no holder yet)"


@contextmanager
def folder_lock(folder: Path, *, command: str | None = None) -> Iterator[Path]:
    """Hold the folder's lock for the block; raise :class:`FolderLocked` naming the holder
    when another live process has it. Creates ``folder`` if needed; yields the lock file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLocked(f"{folder} is in use by {_holder(path)}; wait for it to finish, or stop it "
                               "(one driver per folder)") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "command": command or " ".join(["driver", *sys.argv[1:]]),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }))
            fh.flush()
        except OSError as exc:  # disk full: the write names no file
            exc.filename = exc.filename or str(path)
            raise
        yield path
    finally:
        fh.close()  # closing the descriptor releases the flock
