"""Job priorities of the pool (pure): dependency order and critical-path priorities
from the plan's estimates, for :class:`~driver.farm.dispatch.Dispatcher` requests and
the farm simulator."""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

from .dispatch import DispatchError

K = TypeVar("K", bound=Hashable)  # a job key


def run_order(jobs: Iterable[K], depends_on: Mapping[K, Iterable[K]]) -> list[K]:
    """A dependency order of ``jobs`` (stable: input order among independent jobs).
    Raises DispatchError on a cycle or an unknown dependency."""
    jobs = list(jobs)
    index = {k: i for i, k in enumerate(jobs)}
    pending = {k: {d for d in depends_on.get(k, ())} for k in jobs}
    for k, deps in pending.items():
        unknown = deps - index.keys()
        if unknown:
            raise DispatchError(f"job {k!r} depends on unknown job(s) {sorted(map(str, unknown))}")
    children: dict[K, list[K]] = {k: [] for k in jobs}
    for k, deps in pending.items():
        for d in deps:
            children[d].append(k)
    ready: list[tuple[int, K]] = [(index[k], k) for k, deps in pending.items() if not deps]
    heapq.heapify(ready)
    out: list[K] = []
    while ready:
        _, k = heapq.heappop(ready)
        out.append(k)
        for c in children[k]:
            pending[c].discard(k)
            if not pending[c]:
                heapq.heappush(ready, (index[c], c))
    if len(out) != len(jobs):
        raise DispatchError(f"dependency cycle among {sorted(map(str, set(jobs) - set(out)))}")
    return out


def critical_path_priorities(estimates: dict[K, float], depends_on: Mapping[K, Iterable[K]]) -> dict[K, float]:
    """Request priorities (lower runs first): minus the job's estimate plus the longest
    chain of estimated work that waits on it. A keyframe inherits its video's length,
    so long shots start early instead of forming the tail of the run (in the simulation
    this beats both shot order and longest-job-first; see :mod:`driver.farm.simulate`)."""
    order = run_order(estimates, depends_on)
    children: dict[K, list[K]] = {k: [] for k in order}
    for k in order:
        for d in depends_on.get(k, ()):
            children[d].append(k)
    chain: dict[K, float] = {}
    for k in reversed(order):
        chain[k] = estimates[k] + max((chain[c] for c in children[k]), default=0.0)
    return {k: -v for k, v in chain.items()}


def plan_priorities(jobs: Iterable) -> dict[str, float]:
    """Critical-path priorities of plan jobs (``id``, ``estimate_s``, ``depends_on``)."""
    jobs = list(jobs)
    return critical_path_priorities({j.id: j.estimate_s or 1.0 for j in jobs},
                                    {j.id: [d for d in j.depends_on] for j in jobs})
