"""A server pool opened on first use, on the main thread.

A run whose jobs are all unchanged must start nothing: no local ComfyUI, no pod, no
connection. So :class:`~driver.farm.pool_executor.PoolExecutor` holds an :class:`Opening`
and asks it for the pool only when a job needs a slot. Opening starts processes (a local
ComfyUI, pods) that Ctrl-C, SIGTERM and SIGHUP must stop wherever they land, and Python
delivers signals to the main thread only: a shot thread that needs the pool asks the
main thread (waiting in ``map_shots``) to open it, and waits; a caller on the main
thread (or with no ``map_shots`` running) opens it itself."""

from __future__ import annotations

import threading
from collections.abc import Callable

from driver.errors import Cancelled, ConfigError

from .pool import ServerPool


class Opening:
    def __init__(self, open_pool: Callable[[], ServerPool]):
        self._open = open_pool
        self.pool: ServerPool | None = None
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._wanted = False
        self._opener: threading.Thread | None = None  # the thread that opens while map_shots runs
        self.on_wanted: Callable[[], None] = lambda: None  # wakes the opener

    @classmethod
    def ready(cls, pool: ServerPool) -> Opening:
        """An opening whose pool is already open."""
        opening = cls(lambda: pool)
        opening.open_here()
        return opening

    def get(self) -> ServerPool:
        """The pool, opened now (here, or by the opener thread) if it is not yet."""
        if self.pool is not None:
            return self.pool
        if self._opener is None or threading.current_thread() is self._opener:
            return self.open_here()
        with self._cond:
            self._wanted = True
            self.on_wanted()
            while self.pool is None and self.error is None:
                self._cond.wait(timeout=0.5)
            if self.pool is None:
                raise self.error  # type: ignore[misc]  # set with pool None
            return self.pool

    def open_here(self) -> ServerPool:
        """Open the pool on this thread (once; a failure is raised to every later caller)."""
        with self._cond:
            if self.pool is not None:
                return self.pool
            if self.error is not None:
                raise self.error
            try:
                self.pool = _one_kind(self._open())
            except KeyboardInterrupt:
                self.error = Cancelled("stopped by the user; rerun the same command to resume")
                raise
            except BaseException as exc:
                self.error = exc
                raise
            finally:
                self._wanted = False
                self._cond.notify_all()
            return self.pool

    def wanted(self) -> bool:
        return self._wanted and self.pool is None and self.error is None

    def serve_from(self, thread: threading.Thread | None) -> None:
        """While ``thread`` (the main thread in ``map_shots``) is set, other threads ask it to open."""
        with self._cond:
            self._opener = thread

    def close(self) -> None:
        """Waiting threads stop: the run is over."""
        with self._cond:
            if self.pool is None and self.error is None:
                self.error = Cancelled("the run was stopped; rerun the same command to resume")
            self._cond.notify_all()


def _one_kind(pool: ServerPool) -> ServerPool:
    if len({m.kind for m in pool.members.values()}) > 1:
        raise ConfigError("a run renders on ComfyUI servers or on one serverless endpoint, not on both")
    return pool
