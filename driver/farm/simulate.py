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
job's own estimate) or ``storyboard`` (shot order)."""

from __future__ import annotations

import heapq
import itertools
import random
import time
from dataclasses import asdict, dataclass, field

from .dispatch import Dispatcher

POLICIES = ("critical_path", "longest_first", "storyboard")


@dataclass(frozen=True)
class SimJob:
    key: int
    shot: int
    duration: float
    estimate: float
    deps: tuple[int, ...] = ()


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

    def as_dict(self) -> dict:
        return asdict(self)


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


def schedule(work: list[SimJob], servers: int, *, rng: random.Random | None = None, policy: str = "critical_path",
             overhead_s: float = 0.5, capacity: int = 1, failures: int = 0, detect_s: float = 30.0,
             downtime_s: float = 300.0) -> SimResult:
    """Run ``work`` (in dependency order: a job after the jobs it needs) through the
    dispatcher on ``servers`` simulated servers."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    rng = rng or random.Random(0)
    by_key = {j.key: j for j in work}
    children: dict[int, list[int]] = {j.key: [] for j in work}
    missing = {j.key: len(j.deps) for j in work}
    for j in work:
        for d in j.deps:
            children[d].append(j.key)

    downstream: dict[int, float] = {}
    for j in reversed(work):  # children come after their parents
        downstream[j.key] = j.estimate + max((downstream[c] for c in children[j.key]), default=0.0)

    def priority(j: SimJob) -> float:
        if policy == "critical_path":
            return -downstream[j.key]
        return -j.estimate if policy == "longest_first" else float(j.shot)

    disp = Dispatcher()
    names = [f"s{i:03d}" for i in range(servers)]
    for n in names:
        disp.add_server(n, capacity)

    events: list[tuple[float, int, str, object]] = []
    seq = itertools.count()
    tokens: dict[int, int] = {}        # job -> token of its live run (a lost run's finish is ignored)
    started: dict[int, float] = {}
    busy = 0.0
    done = 0
    resubmitted = 0
    dispatch_cpu = 0.0
    wall0 = time.perf_counter()

    def push(t: float, kind: str, payload) -> None:
        heapq.heappush(events, (t, next(seq), kind, payload))

    def dispatch(now: float) -> None:
        nonlocal dispatch_cpu
        c0 = time.perf_counter()
        pairs = disp.assign()
        dispatch_cpu += time.perf_counter() - c0
        for key, _server in pairs:
            tok = tokens[key] = tokens.get(key, 0) + 1
            started[key] = now
            push(now + overhead_s + by_key[key].duration, "finish", (key, tok))

    c0 = time.perf_counter()
    for j in work:
        if not j.deps:
            disp.request(j.key, priority=priority(j))
    dispatch_cpu += time.perf_counter() - c0
    for _ in range(failures):
        push(rng.uniform(0.0, 0.6) * sum(j.duration for j in work) / servers, "down", None)
    dispatch(0.0)
    now = 0.0
    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "finish":
            key, tok = payload
            if tokens.get(key) != tok:
                continue  # this run was lost with its server
            c0 = time.perf_counter()
            disp.release(key)
            busy += by_key[key].duration
            done += 1
            for c in children[key]:
                missing[c] -= 1
                if not missing[c]:
                    disp.request(c, priority=priority(by_key[c]))
            dispatch_cpu += time.perf_counter() - c0
        elif kind == "down":
            up = disp.up
            if not up:
                continue
            victim = rng.choice(up)
            for key in disp.mark_down(victim, "simulated failure"):
                tokens[key] = tokens.get(key, 0) + 1  # its finish event will not count
                push(now + detect_s, "lost", key)
            push(now + downtime_s, "up", victim)
        elif kind == "lost":
            c0 = time.perf_counter()
            disp.release(payload)
            disp.request(payload, priority=priority(by_key[payload]))
            dispatch_cpu += time.perf_counter() - c0
            resubmitted += 1
        elif kind == "up":
            disp.mark_up(payload)
        dispatch(now)
    loop = time.perf_counter() - wall0
    if done != len(work):
        raise RuntimeError(f"simulation ended with {len(work) - done} job(s) never run")
    per_server = [disp.servers[n].dispatched for n in names]
    total = sum(j.duration for j in work)
    return SimResult(
        servers=servers, jobs=len(work), policy=policy, overhead_s=overhead_s, failures=failures, makespan_s=now,
        lower_bound_s=max(total / (servers * capacity), _critical_path(work, overhead_s)),
        utilisation=busy / (servers * capacity * now) if now else 0.0,
        dispatch_us_per_job=dispatch_cpu / len(work) * 1e6, loop_us_per_job=loop / len(work) * 1e6,
        resubmitted=resubmitted, max_per_server=max(per_server), min_per_server=min(per_server),
        extra={"shots": len({j.shot for j in work}), "total_gpu_s": round(total, 1)})
