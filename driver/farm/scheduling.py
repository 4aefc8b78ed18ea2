"""The driver's :class:`~driver.scheduler.Scheduler` on a pool: shots run concurrently
(:meth:`PoolExecutor.map_shots`) and every attempt holds a slot of the pool
(:meth:`PoolExecutor.slot`), pinned to the server that had it in flight.

This subclass is the farm's integration glue while the scheduler does not carry the two
hooks itself; it only wraps the scheduler's own methods (no logic is duplicated):

* ``run``: the reporter is started once, then ``Scheduler.run`` runs for one shot at a
  time on each of the pool's threads;
* ``_attempt``: runs inside ``executor.slot(job, <server of the attempt's last
  submission>)``, so the submission is recorded with the server that runs it."""

from __future__ import annotations

from driver.scheduler import Scheduler

from .pool_executor import PoolExecutor


class _StartedReporter:
    """The run's reporter with ``start`` made a no-op (it was started once for the run)."""

    def __init__(self, reporter):
        self._reporter = reporter

    def start(self, total_jobs: int) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._reporter, name)


class FarmScheduler(Scheduler):
    executor: PoolExecutor

    def run(self, shots):
        shots = list(shots)
        self.reporter.start(sum(len(self.jobs_for(s)) for s in shots))
        shared = getattr(self.executor, "reporter", None) or self.reporter  # one lock for all threads' calls
        run_reporter, self.reporter = self.reporter, _StartedReporter(shared)
        try:
            self.executor.map_shots(shots, lambda shot: Scheduler.run(self, [shot]), key=self._shot_order())
        finally:
            self.reporter = run_reporter
        return self.result

    def _attempt(self, job, rec, n, names, inputs):
        attempts = rec["attempts"]
        last_server = attempts[n - 1].get("server") if len(attempts) >= n else None
        with self.executor.slot(job, last_server):
            return super()._attempt(job, rec, n, names, inputs)

    def _shot_order(self):
        """Shots with the longest estimated chain of work start first (the job priorities
        then keep the servers busy to the end); storyboard order breaks ties."""
        prio = self.executor.priorities
        index = {}

        def key(shot):
            index.setdefault(shot.id, len(index))
            first = min((prio.get(j.id, 0.0) for j in self.jobs_for(shot)), default=0.0)
            return first, index[shot.id]
        return key
