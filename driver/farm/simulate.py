"""Discrete-event simulation of the pool's dispatcher: many servers, many jobs of random
durations, no real server. It drives the very :class:`~driver.farm.dispatch.Dispatcher`
the pool uses and reports the dispatcher's own cost per job (measured CPU time) and
the servers' utilisation (simulated time).

Workload: shots of 0-3 keyframe jobs (5-40 s) followed by one video job (log-normal
around 120 s, 20-600 s) that needs them, as in an episode. A job holds its server for
``overhead_s`` (upload, submit, download: the driver's round trip) plus its duration;
utilisation counts only the duration. Optional failures: a server dies, its job is
confirmed lost ``detect_s`` later and requested again, the server rejoins
``downtime_s`` after dying.

Policies (the request priority; lower runs first), all from the plan's estimates, which
are noisy (the true duration times a log-normal factor): ``critical_path`` (the job's
estimate plus the longest chain of work waiting on it: a keyframe inherits its video's
length, so long shots start early and do not form the tail), ``longest_first`` (the
job's own estimate) or ``storyboard`` (shot order).

Model loads (optional ``costs``, a :class:`~driver.farm.affinity.LoadCosts`): a job whose
``models`` its server does not hold first loads them (``costs.cost``), which holds the
server and counts as GPU time; ``affinity=True`` hands the same costs to the dispatcher
(the pool's own affinity). ``extra`` then has the sampling and load seconds and the
loads per server."""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from typing import Any

from .affinity import LoadCosts
from .dispatch import Dispatcher
from .priorities import critical_path_priorities

POLICIES = ("critical_path", "longest_first", "storyboard")


@dataclass(frozen=True)
class SimJob:
    key: int
    shot: int
    duration: float
    estimate: float
    deps: tuple[int, ...] = ()
    models: frozenset | None = None  # the model set it loads (driver.render.models), for load costs


@dataclass
class SimResult:
    servers: int
    jobs: int
    policy: str
    overhead_s: float
    failures: int
    makespan_s: float
    lower_bound_s: float
    utilisation: float          # useful GPU seconds / (servers x makespan), failed runs excluded
    dispatch_us_per_job: float  # dispatcher CPU time (request + assign + release) per job
    loop_us_per_job: float      # whole simulation loop per job (dispatcher + event bookkeeping)
    resubmitted: int
    max_per_server: int
    min_per_server: int
    extra: dict = field(default_factory=dict)
    order: list = field(default_factory=list)  # (job key, server) in the order they were dispatched

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["order"]
        return out


def make_workload(n_jobs: int, rng: random.Random, estimate_noise: float = 0.3) -> list[SimJob]:
    jobs: list[SimJob] = []
    shot = 0
    while len(jobs) < n_jobs:
        room = n_jobs - len(jobs) - 1
        deps = []
        for _ in range(min(rng.choice((0, 1, 2, 3)), room)):
            d = rng.uniform(5.0, 40.0)
            jobs.append(SimJob(len(jobs), shot, d, d * rng.lognormvariate(0.0, estimate_noise)))
            deps.append(jobs[-1].key)
        d = min(600.0, max(20.0, rng.lognormvariate(4.6, 0.6)))  # median ~100 s, mean ~120 s
        jobs.append(SimJob(len(jobs), shot, d, d * rng.lognormvariate(0.0, estimate_noise), tuple(deps)))
        shot += 1
    return jobs


def _critical_path(jobs: list[SimJob], overhead_s: float) -> float:
    finish: dict[int, float] = {}
    for j in jobs:  # generated in dependency order
        finish[j.key] = max((finish[d] for d in j.deps), default=0.0) + j.duration + overhead_s
    return max(finish.values(), default=0.0)


def simulate(servers: int = 100, jobs: int = 10_000, *, seed: int = 0, policy: str = "critical_path",
             overhead_s: float = 0.5, capacity: int = 1, failures: int = 0, detect_s: float = 30.0,
             downtime_s: float = 300.0) -> SimResult:
    """A random episode-like workload of ``jobs`` jobs on ``servers`` servers."""
    rng = random.Random(seed)
    return schedule(make_workload(jobs, rng), servers, rng=rng, policy=policy, overhead_s=overhead_s,
                    capacity=capacity, failures=failures, detect_s=detect_s, downtime_s=downtime_s)


def priorities(work: list[SimJob], policy: str) -> dict[int, float]:
    """Each job's request priority under ``policy`` (lower runs first); ``critical_path``
    is the pool's own :func:`~driver.farm.priorities.critical_path_priorities`."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if policy == "critical_path":
        return critical_path_priorities({j.key: j.estimate for j in work}, {j.key: j.deps for j in work})
    return {j.key: -j.estimate if policy == "longest_first" else float(j.shot) for j in work}


def schedule(work: list[SimJob], servers: int, *, rng: random.Random | None = None, policy: str = "critical_path",
             overhead_s: float = 0.5, capacity: int = 1, failures: int = 0, detect_s: float = 30.0,
             downtime_s: float = 300.0, costs: LoadCosts | None = None, affinity: bool = False) -> SimResult:
    """Run ``work`` (in dependency order: a job after the jobs it needs) through the
    dispatcher on ``servers`` simulated servers."""
    sim = _Simulation(work, servers, rng or random.Random(0), priorities(work, policy), overhead_s=overhead_s,
                      capacity=capacity, detect_s=detect_s, downtime_s=downtime_s, costs=costs,
                      affinity=affinity)
    now, loop = sim.run(failures)
    if sim.done != len(work):
        raise RuntimeError(f"simulation ended with {len(work) - sim.done} job(s) never run")
    per_server = [sim.disp.servers[n].dispatched for n in sim.names]
    total = sum(j.duration for j in work)
    return SimResult(
        servers=servers, jobs=len(work), policy=policy, overhead_s=overhead_s, failures=failures, makespan_s=now,
        lower_bound_s=max(total / (servers * capacity), _critical_path(work, overhead_s)),
        utilisation=sim.busy / (servers * capacity * now) if now else 0.0,
        dispatch_us_per_job=sim.dispatch_cpu / len(work) * 1e6, loop_us_per_job=loop / len(work) * 1e6,
        resubmitted=sim.resubmitted, max_per_server=max(per_server), min_per_server=min(per_server), order=sim.order,
        extra={"shots": len({j.shot for j in work}), "total_gpu_s": round(total, 1), "sampling_s": round(total, 1),
               "load_s": round(sim.load_s, 1), "loads_per_server": [sim.loads[n] for n in sim.names]})


class _Simulation:
    """The event loop of :func:`schedule`; ``dispatch_cpu`` counts the dispatcher's own time."""

    def __init__(self, work: list[SimJob], servers: int, rng: random.Random, prio: dict[int, float], *,
                 overhead_s: float, capacity: int, detect_s: float, downtime_s: float,
                 costs: LoadCosts | None = None, affinity: bool = False):
        self.work, self.rng, self.prio = work, rng, prio
        self.overhead_s, self.detect_s, self.downtime_s = overhead_s, detect_s, downtime_s
        self.by_key: dict[Hashable, SimJob] = {j.key: j for j in work}
        self.children: dict[int, list[int]] = {j.key: [] for j in work}
        self.missing = {j.key: len(j.deps) for j in work}
        for j in work:
            for d in j.deps:
                self.children[d].append(j.key)
        self.disp = Dispatcher(costs if affinity else None)
        self.costs = costs
        self.names = [f"s{i:03d}" for i in range(servers)]
        self.held: dict[str, Hashable] = {n: None for n in self.names}  # what each server holds
        self.loads = {n: 0 for n in self.names}
        self.load_s = 0.0
        self.order: list[tuple[Hashable, str]] = []
        for n in self.names:
            self.disp.add_server(n, capacity)
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.tokens: dict[Hashable, int] = {}  # job -> token of its live run (a lost run's finish is ignored)
        self.busy, self.done, self.resubmitted, self.dispatch_cpu = 0.0, 0, 0, 0.0
        self.handlers: dict[str, Callable[[float, Any], None]] = {
            "finish": self._on_finish, "down": self._on_down, "lost": self._on_lost, "up": self._on_up}

    def push(self, t: float, kind: str, payload: Any) -> None:
        heapq.heappush(self.events, (t, next(self.seq), kind, payload))

    def timed(self, fn: Callable[[], Any]) -> Any:
        c0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.dispatch_cpu += time.perf_counter() - c0

    def dispatch(self, now: float) -> None:
        for key, server in self.timed(self.disp.assign):
            self.order.append((key, server))
            tok = self.tokens[key] = self.tokens.get(key, 0) + 1
            self.push(now + self.overhead_s + self._load(server, self.by_key[key]) + self.by_key[key].duration,
                      "finish", (key, tok))

    def _load(self, server: str, job: SimJob) -> float:
        """Seconds ``server`` spends loading ``job``'s models (0 without costs)."""
        if self.costs is None:
            return 0.0
        state = self.held[server]
        seconds, runs = self.costs.cost(state, job.models), self.costs.split(state, job.models)[2]
        self.held[server] = self.costs.after(state, job.models)
        self.loads[server] += runs
        self.load_s += seconds
        return seconds

    def run(self, failures: int) -> tuple[float, float]:
        """Returns (makespan in simulated seconds, wall seconds of the loop)."""
        wall0 = time.perf_counter()
        def first() -> None:
            for j in self.work:
                if not j.deps:
                    self._request(j)
        self.timed(first)
        for _ in range(failures):
            self.push(self.rng.uniform(0.0, 0.6) * sum(j.duration for j in self.work) / len(self.names), "down", None)
        self.dispatch(0.0)
        now = 0.0
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            self.handlers[kind](now, payload)
            self.dispatch(now)
        return now, time.perf_counter() - wall0

    def _on_finish(self, now: float, payload: tuple[int, int]) -> None:
        key, tok = payload
        if self.tokens.get(key) != tok:
            return  # this run was lost with its server
        self.timed(lambda: self._finished(key))

    def _finished(self, key: int) -> None:
        self.disp.release(key)
        self.busy += self.by_key[key].duration
        self.done += 1
        for c in self.children[key]:
            self.missing[c] -= 1
            if not self.missing[c]:
                self._request(self.by_key[c])

    def _request(self, job: SimJob) -> None:
        self.disp.request(job.key, priority=self.prio[job.key], models=job.models, estimate=job.estimate)

    def _on_down(self, now: float, payload: None) -> None:
        up = self.disp.up
        if not up:
            return
        victim = self.rng.choice(up)
        for key in self.disp.mark_down(victim, "simulated failure"):
            self.tokens[key] = self.tokens.get(key, 0) + 1  # its finish event will not count
            self.push(now + self.detect_s, "lost", key)
        self.push(now + self.downtime_s, "up", victim)

    def _on_lost(self, now: float, key: int) -> None:
        def again() -> None:
            self.disp.release(key)
            self._request(self.by_key[key])
        self.timed(again)
        self.resubmitted += 1

    def _on_up(self, now: float, name: str) -> None:
        self.held[name] = self.disp.servers[name].loaded = None  # restarted: nothing loaded
        self.disp.mark_up(name)
