"""The server pool: :class:`~driver.farm.dispatch.Dispatcher` driven by real threads.

* **Members** are ComfyUI servers (or one serverless endpoint). Each has a per-member executor (the driver's own
  :class:`~driver.render.executor.Executor` for a server), a health probe and a number of slots (jobs in flight
  at once, default 1).
* **Preflight** runs per member, in parallel; a member that fails it is left out with its message and the run
  goes on if another can serve.
* **Leases**: a job thread asks for a slot (:meth:`ServerPool.lease`) and blocks until the dispatcher gives it
  one, by priority; it may pin the request to the member that had the job in flight.
* **Health**: a watcher thread probes every member every ``health_interval_s``. A member that fails
  ``down_after`` probes in a row (or that a job thread reports unreachable) is marked down; one that answers
  again passes its preflight again and rejoins.
* **Stopping**: :meth:`fail` (a fatal error from a watcher hook, e.g. the cost guard) and :meth:`cancel`
  (Ctrl-C) wake every waiting thread, which then raises. When no member is up for ``all_down_timeout_s`` a
  waiting thread raises NoServerAvailable.
The pool never queues work of its own beyond the slots: each ComfyUI server keeps its own queue, and a
serverless endpoint is RunPod's queue."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import Any

from driver.errors import Cancelled, DriverError, PreflightFailed
from driver.render.attempt import Limits
from driver.render.executor import ComfyExecutor

from .affinity import Affinity
from .dispatch import Dispatcher, State
from .errors import FarmError, NoServerAvailable
from .members import Check, Lease, Member, check_error

log = logging.getLogger(__name__)

class ServerPool:
    def __init__(self, members: list[Member], *, health_interval_s: float = 5.0, down_after: int = 2,
                 all_down_timeout_s: float = 300.0, rejoin_check: Check | None = None,
                 affinity: Affinity | None = None):
        if not members:
            raise NoServerAvailable("the pool has no server")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise DriverError(f"a server is listed twice: {names}")
        self.members = {m.name: m for m in members}
        self.health_interval_s, self.down_after = health_interval_s, down_after
        self.all_down_timeout_s, self.rejoin_check = all_down_timeout_s, rejoin_check
        self._disp = Dispatcher(affinity)  # affinity: model loads weigh in each server's next job
        self.affinity = affinity
        for m in members:
            self._disp.add_server(m.name, m.capacity)
        self._cond = threading.Condition()
        self._granted: dict[Hashable, str] = {}
        self._keys = itertools.count()
        self._misses: dict[str, int] = {n: 0 for n in names}
        self._fatal: DriverError | None = None
        self._cancelled = False
        self._all_down_since: float | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.hooks: list[Callable[[], None]] = []  # run by the watcher each round (cost guard...)
        self.messages: list[str] = []  # why members were left out or lost, for the summary

    # ------------------------------------------------------------------ preflight
    def preflight(self, check: Check) -> None:
        """Run ``check`` on every member in parallel; leave out those that fail. Raises
        when none is left (PreflightFailed listing every member's problems)."""
        members = list(self.members.values())
        with ThreadPoolExecutor(max_workers=min(16, len(members)), thread_name_prefix="preflight") as tp:
            errors = list(tp.map(lambda m: check_error(check, m), members))
        problems = []
        for m, exc in zip(members, errors, strict=True):
            if exc is None:
                continue
            if isinstance(exc, FarmError):  # a wrong API key, a fleet problem: not one member's fault
                raise exc
            self.exclude(m.name, str(exc))
            problems += [f"{m.name}: {p}" for p in exc.problems] or [f"{m.name}: {exc}"]
        if not self._disp.up:
            raise PreflightFailed("no server can run this plan; nothing was queued:\n"
                                  + "\n".join(f"  - {p}" for p in problems), problems=problems)
        for name in self._disp.up:
            log.info("pool: %s ready (%d slot(s))", name, self.members[name].capacity)

    def exclude(self, name: str, reason: str) -> None:
        with self._cond:
            self._disp.exclude(name, reason)
            self.messages.append(f"{name} left out: {reason}")
            self._assign()  # a job held back for this server's models goes elsewhere; waiters look again
        log.warning("pool: %s left out: %s", name, reason)

    # ------------------------------------------------------------------ leases
    @contextlib.contextmanager
    def lease(self, **want: Any) -> Iterator[Lease]:  # acquire's arguments, by keyword
        lease = self.acquire(**want)
        try:
            yield lease
        finally:
            self.release(lease)

    def acquire(self, priority: float = 0.0, models: Hashable = None, estimate: float | None = None, *,
                pin: str | None = None) -> Lease:
        """Block until a slot is granted (pinned to ``pin`` while that member is up); ``models``
        and ``estimate`` (s): the job's model set and length, for the dispatcher's affinity."""
        key = next(self._keys)
        with self._cond:
            self._raise_if_stopped()
            self._disp.request(key, priority=priority, pin=pin if pin in self.members else None, models=models,
                               estimate=estimate)
            self._assign()
            while key not in self._granted:
                try:
                    self._raise_if_stopped()
                    self._raise_if_all_down()
                except DriverError:
                    self._disp.cancel(key)
                    raise
                self._cond.wait(timeout=1.0)
            member = self.members[self._granted.pop(key)]
            member.jobs += 1
        return Lease(member, key, time.monotonic())

    def release(self, lease: Lease) -> None:
        with self._cond:
            lease.member.busy_s += time.monotonic() - lease.since
            self._disp.release(lease.key)
            self._assign()

    def _assign(self) -> None:
        for key, name in self._disp.assign():
            self._granted[key] = name
        self._cond.notify_all()

    # ------------------------------------------------------------------ health
    def report_unreachable(self, name: str, why: str) -> None:
        """A job thread found ``name`` not answering: mark it down now (the watcher
        brings it back when it answers)."""
        with self._cond:
            if self._disp.servers[name].state is State.UP:
                self._disp.mark_down(name, why)
                self.messages.append(f"{name} down: {why}")
                log.warning("pool: %s is down (%s)", name, why)
            self._assign()

    def note_lost(self, name: str, prompt_id: str) -> None:
        """A job was confirmed lost with ``name`` (for the summary)."""
        with self._cond:
            self.members[name].lost += 1
            self.messages.append(f"{prompt_id} lost with {name}; resubmitted elsewhere")

    def knows(self, name: str, prompt_id: str, *, within_s: float) -> bool:
        """Whether member ``name`` still has ``prompt_id`` (queued, running or in its history),
        asked until it answers or ``within_s`` passes (silent: not known). Queue before
        history: a prompt finishing between the two calls is then still seen."""
        deadline = time.monotonic() + within_s
        executor = self.members[name].executor
        assert isinstance(executor, ComfyExecutor)  # only a ComfyUI server's jobs can be asked about
        reported = False
        while True:
            try:
                return executor.client.is_queued(prompt_id) or executor.client.history(prompt_id) is not None
            except DriverError as exc:
                if not reported:
                    self.report_unreachable(name, f"stopped answering with {prompt_id} in flight ({exc})")
                    reported = True
            if time.monotonic() >= deadline or self.fatal is not None:
                return False
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def is_up(self, name: str) -> bool:
        with self._cond:
            return self._disp.servers[name].state is State.UP

    def state(self, name: str) -> str:
        with self._cond:
            return self._disp.servers[name].state.value

    def probe_round(self) -> None:
        """Probe every member not left out once; mark down / bring back accordingly."""
        with self._cond:
            names = [n for n, s in self._disp.servers.items() if s.state is not State.EXCLUDED]
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(names))), thread_name_prefix="probe") as tp:
            results = dict(zip(names, tp.map(self._probe_ok, names), strict=True))
        for name, ok in results.items():
            state = self.state(name)
            if ok:
                self._misses[name] = 0
                if state == State.DOWN.value:
                    self._rejoin(name)
            else:
                self._misses[name] += 1
                if state == State.UP.value and self._misses[name] >= self.down_after:
                    self.report_unreachable(name, f"no answer to {self._misses[name]} health checks")
        for hook in self.hooks:
            try:
                hook()
            except DriverError as exc:
                self.fail(exc)

    def _probe_ok(self, name: str) -> bool:
        try:
            self.members[name].probe()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not answering"
            log.debug("pool: probe of %s failed: %s", name, exc)
            return False

    def _rejoin(self, name: str) -> None:
        member = self.members[name]
        if self.rejoin_check is not None:
            exc = check_error(self.rejoin_check, member)
            if exc is not None:
                self.exclude(name, f"answers again but fails preflight: {exc}")
                return
        member.uploaded.clear()  # a restarted server may have lost its input folder
        with self._cond:
            self._disp.mark_up(name)
            self._assign()
        self.messages.append(f"{name} rejoined")
        log.info("pool: %s answers again and rejoins", name)

    def __enter__(self) -> ServerPool:
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="pool-health", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.health_interval_s + 15)

    def _watch(self) -> None:
        while not self._stop.wait(self.health_interval_s):
            try:
                self.probe_round()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad round
                log.exception("pool: health round failed")

    # ------------------------------------------------------------------ stopping
    def fail(self, exc: DriverError) -> None:
        """Stop the run with ``exc``: every waiting and future lease raises it."""
        with self._cond:
            if self._fatal is None:
                self._fatal = exc
                log.error("pool: stopping: %s", exc)
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def fatal(self) -> DriverError | None:
        return self._fatal

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._cancelled:
            raise Cancelled("stopped by the user; rerun the same command to resume")

    def _raise_if_all_down(self) -> None:
        if self._disp.up:
            self._all_down_since = None
            return
        now = time.monotonic()
        self._all_down_since = self._all_down_since or now
        if now - self._all_down_since >= self.all_down_timeout_s:
            states = ", ".join(f"{n} ({s.state.value}{': ' + s.reason if s.reason else ''})"
                               for n, s in self._disp.servers.items())
            raise NoServerAvailable(f"no server of the pool has answered for {self.all_down_timeout_s:.0f} s: "
                                    f"{states}; finished shots are kept, rerun to resume")

    # ------------------------------------------------------------------ reporting
    def limits(self) -> Limits:  # a job may land on any member that is up: the tightest of their limits
        with self._cond:
            up = list(self._disp.up)
        return reduce(Limits.tighter, (self.members[n].executor.limits() for n in up), Limits())

    @property
    def capacity(self) -> int:
        with self._cond:
            return self._disp.capacity

    def summary(self) -> list[dict]:
        with self._cond:
            return [{"server": n, "state": s.state.value, "reason": s.reason, "slots": s.capacity,
                     "jobs": self.members[n].jobs, "busy_s": round(self.members[n].busy_s, 3),
                     "lost": self.members[n].lost} for n, s in self._disp.servers.items()]
