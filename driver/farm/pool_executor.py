"""The scheduler's executor over a :class:`~driver.farm.pool.ServerPool`.

Every run renders through it (one server is a pool of one). It implements :class:`driver.render.executor.Executor`,
the scheduler's contract, with two abilities that a single member's executor does not have:

* ``slot(job, server)``: a context manager around one attempt. It leases a slot (pinned to ``server``, the member that
  had the attempt in flight, while that member is up), uploads the job's inputs there and makes ``server`` /
  ``client`` name it, so the manifest records which server did what.
* ``map_shots(shots, fn)``: runs ``fn(shot)`` for many shots at once, on threads.

Concurrency model: the scheduler's bookkeeping (manifest, approvals, reporter, file selection) stays single-threaded:
every shot thread holds one lock except while it waits for a slot or does network I/O (upload, submit, follow,
download). So the scheduler's code needs no locking of its own.

A job whose server stops answering is not resubmitted blindly: its prompt id is looked up on that server (``/queue``
then ``/history``) until the server answers or ``lost_after_s`` passes; only a job the server does not know (or a
server that stays silent) is confirmed lost and submitted again, under a fresh prompt id, elsewhere (or on the same
server once it answers again). The pool opens on the first job that needs a slot (:mod:`driver.farm.opening`):
a run with nothing to render starts and asks nothing."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from driver.errors import Cancelled, LostContact, ServerUnreachable
from driver.progress import LockedReporter
from driver.render.executor import Attempt, DestFor, Executor, JobRef, Limits, Outcome  # the executor contract

from .errors import NoServerAvailable, ServerLost
from .opening import Opening
from .pool import Lease, Member, ServerPool

log = logging.getLogger(__name__)

POOL_LABEL = "pool"


class PoolExecutor(Executor):
    """Give it the ``pool``, or ``opener`` (an :class:`~driver.farm.opening.Opening`) to open it
    when the first job needs a slot, with ``input_names`` (the members' naming of inputs, known
    before any member is), ``threads`` (default: the pool's slots + 2), ``models`` (job id ->
    model set, for the pool's affinity: then one thread per shot, so it sees every ready job) and
    ``estimates`` (job id -> seconds, for the affinity)."""

    def __init__(self, pool: ServerPool | None = None, *, job_timeout_s: float = 3600.0, lost_after_s: float = 30.0,
                 priorities: dict[str, float] | None = None, threads: int | None = None, models: dict | None = None,
                 opener: Opening | None = None, input_names: Callable[[dict], dict[str, str]] | None = None,
                 estimates: dict[str, float] | None = None):
        super().__init__()
        if (pool is None) == (opener is None):
            raise TypeError("PoolExecutor takes a pool or an opener, not both")
        self._opening = opener if opener is not None else Opening.ready(pool)  # type: ignore[arg-type]
        self._names, self.job_timeout_s, self.lost_after_s = input_names, job_timeout_s, lost_after_s
        self.priorities = dict(priorities or {})
        self.threads, self.models, self.estimates = threads, dict(models or {}), dict(estimates or {})
        self._tls, self._big = threading.local(), threading.Lock()
        self._held_by_main = self._closed = False
        self.reporter: LockedReporter | None = None  # the run's reporter, shared by every thread

    @property
    def pool(self) -> ServerPool:
        """The pool (opened now if it is not yet: a job needs it)."""
        return self._opening.get()

    def _first(self) -> Member:
        return next(iter(self.pool.members.values()))

    def _opened_pool(self) -> ServerPool | None:
        """The pool if it was opened (stopping a run never opens it)."""
        return self._opening.pool

    # ------------------------------------------------------------------ scheduler interface
    @property
    def server(self) -> str:
        lease = self._lease()
        return lease.member.name if lease else POOL_LABEL

    @property
    def client_id(self) -> str:
        lease = self._lease()
        return (lease.member if lease else self._first()).executor.client_id

    def shared_reporter(self, reporter):
        return self.reporter or reporter

    def input_names(self, files: dict) -> dict[str, str]:
        return self._names(files) if self._names is not None else self._first().executor.input_names(files)

    def upload(self, files: dict) -> dict[str, str]:
        """Remember the job's inputs; they go to whichever member runs the job."""
        self._tls.pending = dict(files)
        lease = self._lease()
        if lease is not None:
            with self.unlocked():
                self._push_inputs(lease.member)
        return self.input_names(files)

    def limits(self) -> Limits:
        return self.pool.limits()

    @contextlib.contextmanager
    def slot(self, job: JobRef | None = None, server: str | None = None) -> Iterator[Member]:
        """Hold a slot for one attempt of ``job`` (pinned to ``server`` while it is up)."""
        held = self._lease()
        if held is not None:  # nested: keep the slot we have
            yield held.member
            return
        self._tls.want = () if job is None else (
            self.priorities.get(job.id, 0.0), self.models.get(job.id), self.estimates.get(job.id))
        with self.unlocked():
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
                with self.unlocked():
                    return member.executor.run_attempt(compiled, dest_for, in_flight=in_flight, resubmit=relocked)
            except (ServerUnreachable, LostContact) as exc:
                if isinstance(exc, NoServerAvailable) or member.kind != "comfyui":
                    raise
                if time.monotonic() - started > self.job_timeout_s:
                    raise
                with self.unlocked():
                    known = self.pool.knows(member.name, compiled.prompt_id, within_s=self.lost_after_s)
                if known:
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
                with self.unlocked():
                    old, self._tls.lease = self._tls.lease, None
                    self.pool.release(old)
                    self._tls.lease = self._take(pin=None)
                compiled, in_flight = resubmit(), False  # records the new server and a fresh prompt id

    # ------------------------------------------------------------------ many shots
    def map_shots(self, shots: Iterable[Any], fn: Callable[[Any], None], *,
                  key: Callable[[Any], float] | None = None) -> None:
        """Run ``fn(shot)`` for every shot on up to ``threads`` threads (default: the
        pool's slots + 2; one per shot with ``models``). The first error that escapes ``fn`` (a shot's own failures are
        recorded by the scheduler and do not escape) stops the run: no new job starts, and
        it is raised here once bookkeeping is quiet. Ctrl-C does the same."""
        shots = sorted(shots, key=key) if key else list(shots)
        todo = iter(shots)
        errors: list[BaseException] = []
        n = min(len(shots), len(shots) if self.models else self.threads or self.pool.capacity + 2) or 1
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
                        self._cancel_pool()
                finally:
                    self._tls.holds = False
                    changed.set()

        threads = [threading.Thread(target=worker, name=f"shot-{i}", daemon=True) for i in range(n)]
        self._opening.on_wanted = changed.set  # a shot thread asks this thread to open the pool
        self._opening.serve_from(threading.current_thread())
        try:  # Ctrl-C between two starts (or while the pool opens) must stop the threads already running too
            for t in threads:
                t.start()
            while not errors and any(t.is_alive() for t in threads):
                changed.wait(timeout=0.5)
                changed.clear()
                self._open_if_wanted(errors)
        except KeyboardInterrupt:
            self._stop_all()
            raise
        finally:
            self._opening.serve_from(None)
        if errors:
            self._stop_all()
            raise errors[0]

    def _open_if_wanted(self, errors: list[BaseException]) -> None:
        """Open the pool here, on the main thread, when a shot thread needs it (see
        :mod:`driver.farm.opening`); a failure to open stops the run like a shot thread's error."""
        if self._opening.wanted():
            try:
                self._opening.open_here()
            except Exception as exc:  # noqa: BLE001 - raised by map_shots, as a shot thread's error is
                errors.append(exc)

    def _cancel_pool(self) -> None:
        pool = self._opened_pool()
        if pool is not None:
            pool.cancel()

    def _stop_all(self) -> None:
        """Stop new work, cancel what can be cancelled and take the bookkeeping lock, so
        the caller's last manifest write sees no thread mid-change. :meth:`close`
        releases it; threads coming back from the network then end quietly."""
        self._cancel_pool()
        pool = self._opened_pool()
        for m in pool.members.values() if pool is not None else ():
            m.executor.cancel_all()
        if not self._held_by_main:
            self._big.acquire()
            self._held_by_main = True

    def close(self) -> None:
        self._closed = True
        self._opening.close()
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
    def unlocked(self) -> Iterator[None]:
        """Let other shot threads do bookkeeping while this one waits on the network or encodes its own file."""
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
            lease = self.pool.acquire(*getattr(self._tls, "want", ()), pin=pin)  # priority, model set, estimate
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
