"""Typed driver errors. Every error has a stable ``code`` (for manifests and logs)
and an ``exit_code`` (one per class of error, documented in the README).

A subclass states them as class keywords (``class X(DriverError, code="x", exit_code=N)``)
and registers itself in :data:`ERROR_CLASSES` when it is defined (the farm's errors in
``driver.farm.errors`` too: nothing here imports them). A class that decides the run's
exit code when shots failed for different reasons says so with its own ``precedence``
(lower wins; subclasses without one take their parent's)."""

from __future__ import annotations

import errno
from typing import Any, ClassVar

#: Every error class by its stable code (for the README table and for manifests),
#: filled as classes are defined.
ERROR_CLASSES: dict[str, type[DriverError]] = {}


class DriverError(Exception):
    code = "driver_error"
    exit_code = 1
    precedence: ClassVar[int] = 1000
    problems: list[str]  # every problem found, where a class lists them (ConfigError, PreflightFailed)

    def __init_subclass__(cls, *, code: str | None = None, exit_code: int | None = None,
                          precedence: int | None = None, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``class X(DriverError, code="x", exit_code=N, precedence=P)``: what a class does not
        give it takes from its parent; it is registered under its code and ``aliases`` (other
        codes an instance may carry)."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if exit_code is not None:
            cls.exit_code = exit_code
        if precedence is not None:
            cls.precedence = precedence
        for name in (cls.code, *aliases):
            ERROR_CLASSES[name] = cls

    def __init__(self, message: str, *, shot: str | None = None, problems: list[str] | None = None):
        self.shot = shot
        self.problems = list(problems or [])
        super().__init__(f"[{shot}] {message}" if shot else message)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": str(self), "shot": self.shot}


class ConfigError(DriverError, code="config_invalid", exit_code=2, precedence=60):
    """Storyboard, project config or command-line input is invalid. ``problems`` lists
    every problem found (``<json path>: <what was expected>``), not just the first."""

    def __init__(self, message: str, *, problems: list[str] | None = None, shot: str | None = None):
        super().__init__(message, shot=shot, problems=problems)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "problems": self.problems}


class ServerUnreachable(DriverError, code="server_unreachable", exit_code=3, precedence=30):
    """No ComfyUI answers at the URL."""


class PromptRejected(DriverError, code="prompt_rejected", exit_code=4, precedence=70):
    """``POST /prompt`` refused the graph (HTTP 400, or 200 with ``node_errors``)."""

    def __init__(self, message: str, *, error: dict | None = None, node_errors: dict | None = None,
                 shot: str | None = None):
        self.error = error or {}
        self.node_errors = node_errors or {}
        super().__init__(message, shot=shot)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "node_errors": self.flat_errors()}

    def flat_errors(self) -> list[dict]:
        """One record per input error: node id, class_type, type, message, details."""
        out = []
        for node_id, entry in sorted(self.node_errors.items()):
            for err in entry.get("errors", []):
                out.append({
                    "node_id": node_id,
                    "class_type": entry.get("class_type"),
                    "type": err.get("type"),
                    "message": err.get("message"),
                    "details": err.get("details"),
                })
        return out


class ExecutionFailed(DriverError, code="execution_error", exit_code=5, precedence=80):
    """The server ran the prompt and a node raised (websocket ``execution_error``)."""

    def __init__(self, message: str, *, prompt_id: str | None = None, node_id: str | None = None,
                 node_type: str | None = None, exception_type: str | None = None,
                 exception_message: str = "", shot: str | None = None):
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        super().__init__(message, shot=shot)

    def to_dict(self) -> dict:
        d = super().to_dict()
        for attr in ("node_id", "node_type", "exception_type", "prompt_id"):
            if getattr(self, attr):
                d[attr] = getattr(self, attr)
        return d


class Interrupted(ExecutionFailed, code="execution_interrupted"):
    """The prompt was interrupted on the server (``execution_interrupted``)."""


class LostContact(DriverError, code="lost_contact", exit_code=6, precedence=40):
    """The server stopped answering while a job was in flight. The job may still be
    running or finished there: look it up before resubmitting."""


class OutputMissing(DriverError, code="output_missing", exit_code=7, precedence=90):
    """A finished prompt did not produce the files the driver expected."""


class PreflightFailed(DriverError, code="preflight_failed", exit_code=8, precedence=50):
    """The server cannot run the plan: node types or model files missing, WAN lengths
    wrong. ``problems`` lists every one, with the shot and the node title;
    ``missing_types`` the node types the server lacks."""

    def __init__(self, message: str, *, problems: list[str] | None = None, missing_types: list[str] | None = None):
        self.missing_types = list(missing_types or [])
        super().__init__(message, problems=problems)

    def lacks_pack(self, prefix: str = "AP_") -> bool:
        """True when a node type of the anime_pipeline pack is missing."""
        return any(t.startswith(prefix) for t in self.missing_types)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "problems": self.problems}


class QualityFailed(DriverError, code="quality_failed", exit_code=9, precedence=100):
    """A shot failed its quality gates on every attempt (the best attempt is kept)."""


class ReviewPending(DriverError, code="review_pending", exit_code=10, precedence=110):
    """``--stage video`` held shots back: their keyframes have no ``approve`` verdict."""


class NeedsNewImage(DriverError, code="needs_new_image", exit_code=20, precedence=105):
    """A retake was asked for keyframes the storyboard supplies: only a new image in the
    storyboard can answer it (the verdict goes back to pending when the image changes)."""


class StaleApprovals(DriverError, code="approvals_stale", exit_code=21, precedence=65):
    """A verdict was written on a version of ``approvals.json`` that someone else has
    changed since (another tab, reviewer or the driver): reload and decide again."""

    def __init__(self, message: str, *, current: int):
        self.current = current
        super().__init__(message)


class Cancelled(DriverError, code="cancelled", exit_code=130, precedence=0):
    """The producer stopped the run (Ctrl-C). Finished shots are kept; rerun to resume."""


class ComfyUINotInstalled(DriverError, code="comfyui_not_installed", exit_code=13, precedence=22):
    """No managed ComfyUI is installed (or the one there is incomplete): the message gives the install command."""


class InstallSourceError(DriverError,
                         code="source_invalid", aliases=("source_unreachable", "git_missing"), exit_code=14):
    """``driver comfyui install``: the source is not a ComfyUI (no ``main.py``), cannot be fetched (no network,
    no such ref) or needs a tool that is missing (``git``). ``code`` says which."""

    def __init__(self, message: str, *, code: str | None = None):
        if code:
            self.code = code
        super().__init__(message)


class PythonUnsupported(DriverError, code="python_unsupported", exit_code=15):
    """The Python chosen for the managed ComfyUI cannot run it (version outside the supported range, or no venv)."""


class PackageInstallFailed(DriverError, code="pip_failed", exit_code=16):
    """pip failed while installing the managed ComfyUI's packages; the message names the package and the log."""


class DiskFull(DriverError, code="disk_full", exit_code=17, precedence=15):
    """No space left on the device while writing (the path is in the message); free space and rerun."""


class NotWritable(DriverError, code="not_writable", exit_code=18, precedence=20):
    """A folder the driver must write to is not writable (read-only file system, permissions)."""


class ComfyUIBroken(DriverError, code="comfyui_broken", exit_code=19, precedence=25):
    """The ComfyUI the driver would start does not start, or starts without the anime_pipeline nodes; the message
    has the last lines of its log."""


ERROR_CLASSES[DriverError.code] = DriverError


def os_error(exc: OSError) -> DriverError:
    """The typed error of an ``OSError`` that reached a command: the path and the cause in
    one line (disk full and read-only have their own exit codes); finished work is kept."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "(no path)"
    cause = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(f"{where}: {cause}; free space and rerun the same command to resume")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return NotWritable(f"{where}: {cause}; make it writable (or choose another --out) and rerun to resume")
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP):
        return ConfigError(f"{where}: {cause}")
    return DriverError(f"{where}: {cause}")


def _decider(cls: type[DriverError]) -> type[DriverError]:
    """The class whose ``precedence`` and ``exit_code`` stand for ``cls``: the nearest
    one in its ancestry that declares a precedence (DriverError at the latest)."""
    return next(c for c in cls.__mro__ if "precedence" in vars(c))


def exit_code_for(codes: list[str]) -> int:
    """The run's exit code from the error codes of its failed shots (0 when none)."""
    if not codes:
        return 0
    deciders = [_decider(ERROR_CLASSES.get(c, DriverError)) for c in codes]
    return min(deciders, key=lambda c: c.precedence).exit_code
