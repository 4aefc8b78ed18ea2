"""The scheduler's executor over a :class:`~driver.farm.pool.ServerPool`.

It implements :class:`driver.render.executor.Executor`, the scheduler's contract, with two of
its abilities that one server does not need:

* ``slot(job, server)``: a context manager around one attempt. It leases a slot (pinned
  to ``server``, the member that had the attempt in flight, while that member is up),
  uploads the job's inputs to the leased member and makes ``server`` / ``client`` name
  it, so the manifest records which server did what.
* ``map_shots(shots, fn)``: runs ``fn(shot)`` for many shots at once, on threads.

Concurrency model: the scheduler's bookkeeping (manifest, approvals, reporter, file
selection) stays single-threaded: every shot thread holds one lock except while it
waits for a slot or does network I/O (upload, submit, follow, download). So the
scheduler's code needs no locking of its own.

A job whose server stops answering is not resubmitted blindly: its prompt id is looked
up on that server (``/queue`` then ``/history``) until the server answers or
``lost_after_s`` passes; only a job the server does not know (or a server that stays
silent) is confirmed lost and submitted again, under a fresh prompt id, elsewhere."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from driver.errors import Cancelled, ConfigError, DriverError, LostContact, ServerUnreachable
from driver.progress import LockedReporter
from driver.render.attempt import Attempt, JobRef, Limits
from driver.render.executor import ComfyExecutor, DestFor, Executor, Outcome

from .errors import NoServerAvailable, ServerLost
from .pool import Lease, Member, ServerPool

log = logging.getLogger(__name__)

KNOWN, LOST = "known", "lost"
POOL_LABEL = "pool"


class PoolExecutor(Executor):
    def __init__(self, pool: ServerPool, *, job_timeout_s: float = 3600.0, lost_after_s: float = 30.0,
                 priorities: dict[str, float] | None = None, threads: int | None = None):
        super().__init__()
        kinds = {m.kind for m in pool.members.values()}
        if len(kinds) > 1:
            raise ConfigError("a run renders on ComfyUI servers or on one serverless endpoint, not on both")
        self.pool = pool
        self.job_timeout_s, self.lost_after_s = job_timeout_s, lost_after_s
        self.priorities = dict(priorities or {})
        self.threads = threads
        self._first = next(iter(pool.members.values()))
        self._tls = threading.local()
        self._big = threading.Lock()
        self._held_by_main = False
        self._closed = False
        self.reporter: LockedReporter | None = None  # the run's reporter, shared by every thread

    # ------------------------------------------------------------------ scheduler interface
    @property
    def server(self) -> str:
        lease = self._lease()
        return lease.member.name if lease else POOL_LABEL

    @property
    def client_id(self) -> str:
        lease = self._lease()
        return (lease.member if lease else self._first).executor.client_id

    def shared_reporter(self, reporter):
        return self.reporter or reporter

    def unlocked(self) -> contextlib.AbstractContextManager[None]:
        """The bookkeeping lock released around work of this thread's own (see ``Executor.unlocked``)."""
        return self._unlocked()

    def input_names(self, files: dict) -> dict[str, str]:
        return self._first.executor.input_names(files)

    def upload(self, files: dict) -> dict[str, str]:
        """Remember the job's inputs; they go to whichever member runs the job."""
        self._tls.pending = dict(files)
        lease = self._lease()
        if lease is not None:
            with self._unlocked():
                self._push_inputs(lease.member)
        return self.input_names(files)

    def limits(self) -> Limits:
        """The tightest limits of the members that are up (a job may land on any of them)."""
        out = Limits()
        for m in self.pool.members.values():
            if self.pool.is_up(m.name):
                out = out.tighter(m.executor.limits())
        return out

    @contextlib.contextmanager
    def slot(self, job: JobRef | None = None, server: str | None = None) -> Iterator[Member]:
        """Hold a slot for one attempt of ``job`` (pinned to ``server`` while it is up)."""
        held = self._lease()
        if held is not None:  # nested: keep the slot we have
            yield held.member
            return
        self._tls.priority = self.priorities.get(job.id, 0.0) if job is not None else 0.0
        with self._unlocked():
            self._tls.lease = self._take(pin=server)
        try:
            yield self._tls.lease.member
        finally:
            lease, self._tls.lease = self._tls.lease, None
            if lease is not None:  # None: moving the job to another server failed
                self.pool.release(lease)

    def run_attempt(self, compiled: Attempt, dest_for: DestFor, *, in_flight: bool = False,
                    resubmit: Callable[[], Attempt] | None = None) -> Outcome:
        if self._lease() is None:  # a scheduler without the slot() hook
            with self.slot(compiled.job):
                return self.run_attempt(compiled, dest_for, in_flight=in_flight, resubmit=resubmit)
        started, moves = time.monotonic(), 0
        relocked = self._relocking(resubmit)
        while True:
            lease = self._lease()
            assert lease is not None  # held by the slot above (or moved by the loop below)
            member = lease.member
            try:
                with self._unlocked():
                    return member.executor.run_attempt(compiled, dest_for, in_flight=in_flight, resubmit=relocked)
            except (ServerUnreachable, LostContact) as exc:
                if isinstance(exc, NoServerAvailable) or member.kind != "comfyui":
                    raise
                if time.monotonic() - started > self.job_timeout_s:
                    raise
                with self._unlocked():
                    fate = self._fate(member, compiled.prompt_id)
                if fate == KNOWN:
                    log.info("%s: %s still knows %s; following it there", compiled.job.id, member.name,
                             compiled.prompt_id)
                    in_flight = True
                    continue
                self.pool.note_lost(member.name, compiled.prompt_id)
                moves += 1
                if resubmit is None or moves > 2 * len(self.pool.members) + 1:
                    raise ServerLost(f"{compiled.prompt_id} was lost with {member.name} ({exc}) and could not be "
                                     "moved to another server; rerun to resume", shot=compiled.job.shot) from exc
                log.warning("%s: %s was lost with %s (%s); submitting it again on another server",
                            compiled.job.id, compiled.prompt_id, member.name, exc)
                with self._unlocked():
                    old, self._tls.lease = self._tls.lease, None
                    self.pool.release(old)
                    self._tls.lease = self._take(pin=None)
                compiled, in_flight = resubmit(), False  # records the new server and a fresh prompt id

    # ------------------------------------------------------------------ many shots
    def map_shots(self, shots: Iterable[Any], fn: Callable[[Any], None], *,
                  key: Callable[[Any], float] | None = None) -> None:
        """Run ``fn(shot)`` for every shot on up to ``threads`` threads (default: the
        pool's slots + 2). The first error that escapes ``fn`` (a shot's own failures are
        recorded by the scheduler and do not escape) stops the run: no new job starts, and
        it is raised here once bookkeeping is quiet. Ctrl-C does the same."""
        shots = sorted(shots, key=key) if key else list(shots)
        todo = iter(shots)
        errors: list[BaseException] = []
        n = min(len(shots), self.threads or self.pool.capacity + 2) or 1

        changed = threading.Event()

        def worker() -> None:
            with self._big:
                self._tls.holds = True
                try:
                    while not errors and not self._closed:
                        shot = next(todo, None)
                        if shot is None:
                            return
                        fn(shot)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    if not self._closed:
                        errors.append(exc)
                        self.pool.cancel()
                finally:
                    self._tls.holds = False
                    changed.set()

        threads = [threading.Thread(target=worker, name=f"shot-{i}", daemon=True) for i in range(n)]
        try:  # Ctrl-C between two starts must stop the threads already running too
            for t in threads:
                t.start()
            while not errors and any(t.is_alive() for t in threads):
                changed.wait(timeout=0.5)
                changed.clear()
        except KeyboardInterrupt:
            self._stop_all()
            raise
        if errors:
            self._stop_all()
            raise errors[0]

    def _stop_all(self) -> None:
        """Stop new work, cancel what can be cancelled and take the bookkeeping lock, so
        the caller's last manifest write sees no thread mid-change. :meth:`close`
        releases it; threads coming back from the network then end quietly."""
        self.pool.cancel()
        for m in self.pool.members.values():
            m.executor.cancel_all()
        if not self._held_by_main:
            self._big.acquire()
            self._held_by_main = True

    def close(self) -> None:
        self._closed = True
        if self._held_by_main:
            self._held_by_main = False
            self._big.release()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _lease(self) -> Lease | None:
        return getattr(self._tls, "lease", None)

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Let other shot threads do bookkeeping while this one waits on the network."""
        if not getattr(self._tls, "holds", False):
            yield
            return
        self._big.release()
        try:
            yield
        finally:
            self._big.acquire()
            if self._closed:
                raise Cancelled("the run was stopped; rerun the same command to resume")

    def _relocking(self, fn: Callable | None) -> Callable | None:
        """``fn`` (which writes the manifest) called from inside network I/O takes the lock."""
        if fn is None:
            return None

        def call():
            if not getattr(self._tls, "holds", False):
                return fn()
            with self._big:
                return fn()
        return call

    def _take(self, pin: str | None) -> Lease:
        """Lease a slot and upload the pending inputs there; a member that fails the
        upload is reported unreachable and another is tried."""
        while True:
            lease = self.pool.acquire(priority=getattr(self._tls, "priority", 0.0), pin=pin)
            try:
                self._push_inputs(lease.member)
                return lease
            except (ServerUnreachable, LostContact) as exc:
                self.pool.report_unreachable(lease.member.name, f"input upload failed: {exc}")
                self.pool.release(lease)
                pin = None

    def _push_inputs(self, member: Member) -> None:
        pending = getattr(self._tls, "pending", None) or {}
        names = member.executor.input_names(pending)
        todo = {role: path for role, path in pending.items() if names[role] not in member.uploaded}
        if todo:
            member.executor.upload(todo)
            member.uploaded.update(names[r] for r in todo)

    def _fate(self, member: Member, prompt_id: str) -> str:
        """Ask ``member`` about ``prompt_id`` until it answers or ``lost_after_s`` passes.
        Queue before history: a prompt finishing between the two calls is then still seen."""
        deadline = time.monotonic() + self.lost_after_s
        assert isinstance(member.executor, ComfyExecutor)  # only a ComfyUI server's jobs can be asked about
        client = member.executor.client
        reported = False
        while True:
            try:
                if client.is_queued(prompt_id) or client.history(prompt_id) is not None:
                    return KNOWN
                return LOST
            except DriverError as exc:
                if not reported:
                    self.pool.report_unreachable(member.name, f"stopped answering with {prompt_id} in flight ({exc})")
                    reported = True
            if time.monotonic() >= deadline or self.pool.fatal is not None:
                return LOST
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
