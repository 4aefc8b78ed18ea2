"""Executors run job attempts for the scheduler. :class:`Executor` is the contract every
backend implements (one ComfyUI server here; the farm's pool, which every run renders
through, and RunPod Serverless in ``driver.farm``); its optional abilities have defaults,
so the scheduler never probes.

:class:`ComfyExecutor` is one server's side of an attempt: upload inputs, submit (or
find a job already in flight), follow it, download and hash its outputs, read its
quality report. The scheduler writes every state change to the manifest before the
next network step, so a crash at any point leaves a record that
:meth:`ComfyExecutor.recover` can pick up: the prompt id is known before ``POST
/prompt``, and a rerun asks the server about it (``/queue``, then ``/history``) before
submitting anything again."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver.comfy.client import ComfyClient
from driver.errors import DriverError, ExecutionFailed, OutputMissing
from driver.files import FileRecord, file_record, sha256_file
from driver.outputs.quality import REPORT_MARKER, parse_report_from_error, report_from_history
from driver.outputs.verify import verify_file

from .attempt import Attempt, JobRef, Limits, server_limits
from .compile import REPORT
from .models import ran_and_cached

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one attempt produced. ``files`` maps output role -> downloaded path."""

    files: dict[str, Path] = field(default_factory=dict)
    report: dict | None = None
    timings: dict = field(default_factory=dict)
    stopped_by_gate: bool = False  # AP_QualityReport(policy=stop) raised: no video
    loaders: dict | None = None    # loader node ids that ran / came from the cache (driver.render.models)


def upload_name(path: Path, role: str) -> str:
    """Content-addressed upload name: a changed image changes the workflow's hash. The file is
    hashed once while it is unchanged (same inode, size and modification time): a job's inputs
    are named three times on their way to a server (an enhance chunk file is tens of MB), and
    the upload itself checks the bytes it sends against the name (``ComfyClient.upload_image``)."""
    st = path.stat()
    return f"{_digest(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)[:16]}_{role}{path.suffix.lower()}"


@functools.lru_cache(maxsize=64)
def _digest(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def server_input_names(run_id: str, files: dict[str, Path]) -> dict[str, str]:
    """Server-side names (``ap/<run_id>/<sha16>_<role>.png``) for input files."""
    return {role: f"ap/{run_id}/{upload_name(p, role)}" for role, p in files.items()}


DestFor = Callable[[str, str], Path]  # (output role, file extension) -> where the file goes


class Executor(ABC):
    """What the scheduler needs of a backend. ``server`` and ``client_id`` name, for the
    manifest, what runs the current attempt."""

    #: critical-path priority of each job id (lower starts first); empty: storyboard order
    priorities: dict[str, float]
    #: what the backend did (per server jobs, pods' cost), for the manifest; set on close
    summary: dict[str, Any]

    def __init__(self) -> None:
        self.priorities, self.summary = {}, {}

    @property
    @abstractmethod
    def server(self) -> str: ...

    @property
    @abstractmethod
    def client_id(self) -> str: ...

    @abstractmethod
    def input_names(self, files: dict[str, Path]) -> dict[str, str]:
        """The names the backend will know ``files`` (role -> path) by, before any upload."""

    @abstractmethod
    def upload(self, files: dict[str, Path]) -> dict[str, str]: ...

    @abstractmethod
    def run_attempt(self, compiled: Attempt, dest_for: DestFor, *, in_flight: bool = False,
                    resubmit: Callable[[], Attempt] | None = None) -> Outcome: ...

    def limits(self) -> Limits:
        """What one job may send to this backend and hold there (unknown: no limit)."""
        return Limits()

    def slot(self, job: JobRef | None, server: str | None = None) -> AbstractContextManager[Any]:
        """Held around one attempt of ``job`` (pinned to ``server``, which had it in flight).
        One server runs one job at a time: nothing to hold (the farm's pool has slots)."""
        return contextlib.nullcontext()

    def map_shots(self, shots: Iterable[Any], fn: Callable[[Any], None], *,
                  key: Callable[[Any], float] | None = None) -> None:
        """Run ``fn(shot)`` for every shot: here one after the other, in the given order
        (the pool runs them concurrently, ordered by ``key``)."""
        for shot in shots:
            fn(shot)

    def unlocked(self) -> AbstractContextManager[Any]:
        """Held around work of a :meth:`map_shots` job that touches no shared state (encoding
        a file of its own), so other jobs' bookkeeping goes on meanwhile; one server: nothing."""
        return contextlib.nullcontext()

    def shared_reporter(self, reporter: Any) -> Any:
        """The reporter the shots' bookkeeping uses while :meth:`map_shots` runs (the
        pool serialises it for its threads)."""
        return reporter

    def cancel_all(self) -> None:  # noqa: B027 - an ability with nothing to do by default, not abstract
        """Cancel every job in flight (on Ctrl-C); nothing to do for one server."""


class ComfyExecutor(Executor):
    """Attempts on one ComfyUI server: a member of the run's pool (``driver.farm``)."""

    def __init__(self, client: ComfyClient, *, run_id: str, job_timeout: float, reporter=None):
        super().__init__()
        self.client = client
        self.run_id = run_id
        self.job_timeout = job_timeout
        self.reporter = reporter

    @property
    def server(self) -> str:
        return self.client.url

    @property
    def client_id(self) -> str:
        return self.client.client_id

    def limits(self) -> Limits:
        return server_limits(self.client)

    # ------------------------------------------------------------------ inputs
    def input_names(self, files: dict[str, Path]) -> dict[str, str]:
        return server_input_names(self.run_id, files)

    def upload(self, files: dict[str, Path]) -> dict[str, str]:
        names = {}
        for role, path in files.items():
            names[role] = self.client.upload_image(path, subfolder=f"ap/{self.run_id}", name=upload_name(path, role))
        return names

    # ------------------------------------------------------------------ running
    def submit_and_follow(self, compiled: Attempt) -> tuple[dict, dict]:
        """Run a compiled attempt to the end; returns (history entry, timings)."""
        t0 = time.monotonic()
        marks: dict[str, float] = {}

        def on_event(kind: str, data: dict) -> None:
            if kind == "execution_start":
                marks.setdefault("start", time.monotonic())
            if self.reporter is not None:
                self.reporter.event(kind, data)

        entry = self.client.run(compiled.prompt, prompt_id=compiled.prompt_id, timeout=self.job_timeout,
                                on_event=on_event)
        return entry, self._timings(entry, t0, marks.get("start"))

    def recover(self, compiled: Attempt) -> tuple[dict, dict] | None:
        """Look up an attempt that was in flight when the driver stopped. Returns its
        history entry once finished (waiting while it is still queued or running), or
        None when the server does not know it (restarted, or never received it)."""
        t0 = time.monotonic()
        pid = compiled.prompt_id
        # queue first, then history: a prompt that finishes between the two calls is
        # then still found (asking history first could miss it in both and render it twice)
        if self.client.is_queued(pid):
            log.info("%s is still queued or running on %s; waiting for it", pid, self.server)
            entry = self.client.wait_for(pid, timeout=self.job_timeout)
        else:
            found = self.client.history(pid)
            if found is None:
                return None
            entry = ComfyClient.check_entry(pid, found)
        return entry, self._timings(entry, t0, None)

    @staticmethod
    def _timings(entry: dict, t0: float, started: float | None) -> dict:
        stamps = {ev: data.get("timestamp") for ev, data in (entry.get("status") or {}).get("messages", [])
                  if isinstance(data, dict)}
        start = stamps.get("execution_start")
        end = stamps.get("execution_success") or stamps.get("execution_error") or stamps.get("execution_interrupted")
        execution = (end - start) / 1000.0 if start and end else None
        wall = time.monotonic() - t0
        queue = (started - t0) if started is not None else None
        return {"queue_s": _r(queue), "execution_s": _r(execution), "wall_s": _r(wall)}

    # ------------------------------------------------------------------ outputs
    def collect(self, compiled: Attempt, entry: dict, dest_for: DestFor) -> Outcome:
        """Download every output of a role the job declares; ``dest_for(role, ext)``
        gives its path. Raises OutputMissing when a declared role produced no file."""
        t0 = time.monotonic()
        out = Outcome()
        for ref in ComfyClient.output_files(entry):
            role = compiled.outputs.get(ref["node_id"])
            if role is None or role == REPORT:
                continue
            if role in out.files:
                raise OutputMissing(f"{compiled.prompt_id}: node {ref['node_id']} ({role}) wrote more than one file "
                                    f"({out.files[role].name} and {ref['filename']}); a save node must write one",
                                    shot=compiled.job.shot)
            dest = dest_for(role, Path(ref["filename"]).suffix.lstrip(".").lower() or "bin")
            self.client.download(ref, dest)
            problem = verify_file(dest, compiled.job.frames if role == "video" else None)
            if problem:
                raise OutputMissing(f"{compiled.prompt_id}: {ref['filename']} ({role}) {problem}",
                                    shot=compiled.job.shot)
            out.files[role] = dest
        wanted = set(compiled.outputs.values()) - {REPORT}
        missing = sorted(wanted - set(out.files))
        if missing:
            raise OutputMissing(f"{compiled.prompt_id} finished without output(s) {missing} "
                                f"(history outputs: {sorted((entry.get('outputs') or {}).keys())})",
                                shot=compiled.job.shot)
        report_nodes = [nid for nid, role in compiled.outputs.items() if role == REPORT]
        if report_nodes:
            out.report = report_from_history(entry, report_nodes[0])
            if out.report is None:
                raise OutputMissing(f"{compiled.prompt_id}: the Quality Report node {report_nodes[0]} returned no "
                                    "report", shot=compiled.job.shot)
        out.timings["download_s"] = _r(time.monotonic() - t0)
        return out

    def run_attempt(self, compiled: Attempt, dest_for: DestFor, *, in_flight: bool = False,
                    resubmit: Callable[[], Attempt] | None = None) -> Outcome:
        """Submit (or recover) one attempt and collect it.

        With ``in_flight`` the attempt is first looked up on the server; if the server
        does not know it, ``resubmit()`` gives the attempt under a fresh prompt id (so a
        stale history entry can never be mistaken for it) and that is submitted. A gate
        that stopped the prompt (``AP_QualityReport`` with ``policy=stop``) is an Outcome
        with its report and no files, not an error."""
        try:
            got = self.recover(compiled) if in_flight else None
            if got is None:
                if in_flight:
                    log.info("%s is unknown to %s (restarted?); submitting it again", compiled.prompt_id, self.server)
                    compiled = resubmit() if resubmit else compiled
                got = self.submit_and_follow(compiled)
        except ExecutionFailed as exc:
            if REPORT_MARKER in (exc.exception_message or ""):
                return Outcome(report=parse_report_from_error(exc.exception_message), stopped_by_gate=True)
            raise
        entry, timings = got
        outcome = self.collect(compiled, entry, dest_for)
        outcome.timings = {**timings, **outcome.timings}
        outcome.loaders = ran_and_cached(compiled.prompt, entry)
        return outcome


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def describe_error(exc: DriverError) -> dict:
    """The manifest's record of an error (each class says what it adds: ``to_dict``)."""
    return exc.to_dict()


def record_files(run_dir: Path, files: dict[str, Path]) -> list[FileRecord]:
    return [FileRecord(role=role, **file_record(run_dir, p)) for role, p in sorted(files.items())]

