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
    """Storyboard, project config or command-line input is invalid."""

    code = "config_invalid"
    exit_code = 2


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
