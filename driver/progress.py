"""Progress reporting: Rich bars on a terminal (overall jobs, the current shot's nodes,
the current sampler's steps), plain log lines otherwise. The scheduler only calls the
:class:`Reporter` interface; it never knows which one it got."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

log = logging.getLogger("driver")


class Reporter:
    """Plain reporter: one log line per job event (also the base class)."""

    def start(self, total_jobs: int) -> None:
        log.info("%d job(s) to check", total_jobs)

    def job_started(self, job_id: str, attempt: int, nodes: int) -> None:
        log.info("%s: attempt %d submitted (%d nodes)", job_id, attempt, nodes)

    def job_skipped(self, job_id: str, why: str) -> None:
        log.info("%s: %s", job_id, why)

    def job_finished(self, job_id: str, status: str, detail: str = "") -> None:
        log.info("%s: %s%s", job_id, status, f" ({detail})" if detail else "")

    def event(self, kind: str, data: dict) -> None:
        """A websocket event of the running prompt (``executing``, ``progress``...)."""

    def stop(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RichReporter(Reporter):
    """Three bars: overall jobs, nodes of the running prompt, steps of the running node."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self.overall: Any = None  # rich TaskIDs, once started
        self.shot: Any = None
        self.steps: Any = None
        self._ran: set[str] = set()

    def start(self, total_jobs: int) -> None:
        self.progress.start()
        self.overall = self.progress.add_task("episode", total=total_jobs)
        self.shot = self.progress.add_task("-", total=1, visible=False)
        self.steps = self.progress.add_task("steps", total=1, visible=False)

    def job_started(self, job_id: str, attempt: int, nodes: int) -> None:
        super().job_started(job_id, attempt, nodes)
        self._ran = set()
        self.progress.update(self.shot, description=f"{job_id} a{attempt}", total=max(nodes, 1), completed=0,
                             visible=True)
        self.progress.update(self.steps, visible=False)

    def job_skipped(self, job_id: str, why: str) -> None:
        super().job_skipped(job_id, why)  # a log line, printed above the bars
        self.progress.advance(self.overall)

    def job_finished(self, job_id: str, status: str, detail: str = "") -> None:
        super().job_finished(job_id, status, detail)
        if status in ("done", "failed", "quality_failed"):
            self.progress.advance(self.overall)
        task = self.progress.tasks[self.shot]
        self.progress.update(self.shot, completed=task.total)
        self.progress.update(self.steps, visible=False)

    def event(self, kind: str, data: dict) -> None:
        if kind == "execution_cached":
            self._ran.update(data.get("nodes") or [])
            self.progress.update(self.shot, completed=len(self._ran))
        elif kind == "executing" and data.get("node") is not None:
            self._ran.add(data["node"])
            self.progress.update(self.shot, completed=len(self._ran) - 1)
            self.progress.update(self.steps, visible=False)
        elif kind == "progress":
            self.progress.update(self.steps, description=f"  node {data.get('node')}", total=data.get("max") or 1,
                                 completed=data.get("value", 0), visible=True)

    def stop(self) -> None:
        if self.overall is not None:
            self.progress.stop()


def make_reporter(force_plain: bool = False) -> Reporter:
    if not force_plain and sys.stderr.isatty():
        return RichReporter()
    return Reporter()


def setup_logging(verbose: bool = False, *, rich_console=None) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_anime_driver", False):  # ours from an earlier call; leave others' handlers alone
            root.removeHandler(h)
    if rich_console is not None:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=rich_console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler._anime_driver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


class LockedReporter:
    """Serialises a progress reporter used from several threads."""

    def __init__(self, reporter):
        self._reporter, self._lock = reporter, threading.Lock()

    def __getattr__(self, name):
        attr = getattr(self._reporter, name)
        if not callable(attr):
            return attr

        def call(*args, **kw):
            with self._lock:
                return attr(*args, **kw)
        return call
