"""Typed driver errors. Every error has a stable ``code`` (for manifests and logs)
and an ``exit_code`` (one per class of error, documented in the README)."""

from __future__ import annotations


class DriverError(Exception):
    code = "driver_error"
    exit_code = 1

    def __init__(self, message: str, *, shot: str | None = None):
        self.shot = shot
        super().__init__(f"[{shot}] {message}" if shot else message)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": str(self), "shot": self.shot}


class ConfigError(DriverError):
    """Storyboard, project config or command-line input is invalid. ``problems`` lists
    every problem found (``<json path>: <what was expected>``), not just the first."""

    code = "config_invalid"
    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None, shot: str | None = None):
        self.problems = list(problems or [])
        super().__init__(message, shot=shot)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "problems": self.problems}


class ServerUnreachable(DriverError):
    """No ComfyUI answers at the URL."""

    code = "server_unreachable"
    exit_code = 3


class PromptRejected(DriverError):
    """``POST /prompt`` refused the graph (HTTP 400, or 200 with ``node_errors``)."""

    code = "prompt_rejected"
    exit_code = 4

    def __init__(self, message: str, *, error: dict | None = None, node_errors: dict | None = None, shot: str | None = None):
        self.error = error or {}
        self.node_errors = node_errors or {}
        super().__init__(message, shot=shot)

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


class ExecutionFailed(DriverError):
    """The server ran the prompt and a node raised (websocket ``execution_error``)."""

    code = "execution_error"
    exit_code = 5

    def __init__(self, message: str, *, prompt_id: str | None = None, node_id: str | None = None,
                 node_type: str | None = None, exception_type: str | None = None,
                 exception_message: str = "", shot: str | None = None):
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        super().__init__(message, shot=shot)


class Interrupted(ExecutionFailed):
    """The prompt was interrupted on the server (``execution_interrupted``)."""

    code = "execution_interrupted"


class LostContact(DriverError):
    """The server stopped answering while a job was in flight. The job may still be
    running or finished there: look it up before resubmitting."""

    code = "lost_contact"
    exit_code = 6


class OutputMissing(DriverError):
    """A finished prompt did not produce the files the driver expected."""

    code = "output_missing"
    exit_code = 7


class PreflightFailed(DriverError):
    """The server cannot run the plan: node types or model files missing, WAN lengths
    wrong. ``problems`` lists every one, with the shot and the node title."""

    code = "preflight_failed"
    exit_code = 8

    def __init__(self, message: str, *, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__(message)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "problems": self.problems}


class QualityFailed(DriverError):
    """A shot failed its quality gates on every attempt (the best attempt is kept)."""

    code = "quality_failed"
    exit_code = 9


class ReviewPending(DriverError):
    """``--stage video`` held shots back: their keyframes have no ``approve`` verdict."""

    code = "review_pending"
    exit_code = 10


class Cancelled(DriverError):
    """The producer stopped the run (Ctrl-C). Finished shots are kept; rerun to resume."""

    code = "cancelled"
    exit_code = 130


class ComfyUINotInstalled(DriverError):
    """No managed ComfyUI is installed (or the one there is incomplete): the message gives the install command."""

    code = "comfyui_not_installed"
    exit_code = 13


class InstallSourceError(DriverError):
    """``driver comfyui install``: the source is not a ComfyUI (no ``main.py``), cannot be fetched (no network,
    no such ref) or needs a tool that is missing (``git``). ``code`` says which."""

    code = "source_invalid"
    exit_code = 14

    def __init__(self, message: str, *, code: str | None = None):
        if code:
            self.code = code
        super().__init__(message)


class PythonUnsupported(DriverError):
    """The Python chosen for the managed ComfyUI cannot run it (version outside the supported range, or no venv)."""

    code = "python_unsupported"
    exit_code = 15


class PackageInstallFailed(DriverError):
    """pip failed while installing the managed ComfyUI's packages; the message names the package and the log."""

    code = "pip_failed"
    exit_code = 16


class DiskFull(DriverError):
    """No space left on the device while writing (the path is in the message); free space and rerun."""

    code = "disk_full"
    exit_code = 17


class NotWritable(DriverError):
    """A folder the driver must write to is not writable (read-only file system, permissions)."""

    code = "not_writable"
    exit_code = 18


class ComfyUIBroken(DriverError):
    """The ComfyUI the driver would start does not start, or starts without the anime_pipeline nodes; the message
    has the last lines of its log."""

    code = "comfyui_broken"
    exit_code = 19


#: Exit-code precedence when several shots failed for different reasons: the first
#: class in this list that occurred decides the run's exit code.
EXIT_PRECEDENCE = (Cancelled, DiskFull, NotWritable, ComfyUINotInstalled, ComfyUIBroken, ServerUnreachable,
                   LostContact, PreflightFailed, ConfigError, PromptRejected,
                   ExecutionFailed, OutputMissing, QualityFailed, ReviewPending, DriverError)

#: Every error class by its stable code (for the README table and for manifests).
ERROR_CLASSES = {cls.code: cls for cls in (DriverError, ConfigError, ServerUnreachable, PromptRejected, ExecutionFailed,
                                           Interrupted, LostContact, OutputMissing, PreflightFailed, QualityFailed,
                                           ReviewPending, Cancelled, ComfyUINotInstalled, InstallSourceError,
                                           PythonUnsupported, PackageInstallFailed, DiskFull, NotWritable,
                                           ComfyUIBroken)}
ERROR_CLASSES.update({c: InstallSourceError for c in ("source_unreachable", "git_missing")})


def exit_code_for(codes: list[str]) -> int:
    """The run's exit code from the error codes of its failed shots (0 when none)."""
    if not codes:
        return 0
    classes = [ERROR_CLASSES.get(c, DriverError) for c in codes]
    for cls in EXIT_PRECEDENCE:
        if any(issubclass(c, cls) for c in classes):
            return cls.exit_code
    return DriverError.exit_code


def _register_farm_errors() -> None:
    """The farm's error codes join the table, and its fleet errors (which stop the run)
    the precedence, right after ``cancelled``."""
    global EXIT_PRECEDENCE
    from .farm.errors import FARM_ERROR_CLASSES, BudgetExceeded, FarmError  # late: they subclass these classes
    ERROR_CLASSES.update(FARM_ERROR_CLASSES)
    EXIT_PRECEDENCE = (Cancelled, BudgetExceeded, FarmError, *EXIT_PRECEDENCE[1:])


_register_farm_errors()
