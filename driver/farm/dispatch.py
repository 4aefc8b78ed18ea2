"""Pure dispatch logic of the server pool: which waiting job gets which free server slot.

No I/O, no threads, no clock: :class:`~driver.farm.pool.ServerPool` drives it from real
threads and :mod:`driver.farm.simulate` from a discrete-event clock, so the same code is
tested by both. The farm is not a queue system of its own: every ComfyUI server keeps
its own queue, and the dispatcher only bounds how many jobs each server holds at once
(``capacity``, default 1, so a slow server does not hoard work) and hands the next
job, by priority, to whichever server has a free slot.

Dependency order is the caller's: a job is requested only once its inputs exist (the
video of a shot after its keyframes). Among waiting requests the lowest ``priority``
goes first, then the earliest request. Servers with free slots are used in least-
recently-released order, which spreads work evenly.

Server states: ``up`` (dispatchable), ``down`` (stopped answering; its jobs stay
assigned until the caller has confirmed them lost or finished and released them),
``excluded`` (left out by preflight, or removed). A request may be ``pinned`` to one
server (to pick up a job that was in flight there); when that server goes down the
pin is dropped and the request waits for any server, like the others.

Affinity (optional, ``Dispatcher(affinity=LoadCosts(...))``): a request may name the
model set its job loads (``models``) and each server remembers what it holds
(``Server.loaded``). A free server then takes, among the waiting requests whose priority
is within ``affinity.slack_s`` of the best one, the one that is cheapest to load there
(then: the set it already runs, then priority, then request order). Without affinity
the choice is the best priority, as before. :mod:`driver.farm.affinity` has the costs."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from .affinity import Affinity, choose

Key = Hashable
K = TypeVar("K", bound=Hashable)  # a job key of the functions below


class State(str, Enum):
    UP = "up"
    DOWN = "down"
    EXCLUDED = "excluded"


@dataclass
class Server:
    name: str
    capacity: int = 1
    state: State = State.UP
    reason: str = ""
    running: set = field(default_factory=set)
    dispatched: int = 0  # jobs ever assigned here
    loaded: Hashable = None  # what the server holds, as the affinity's costs see it

    @property
    def free(self) -> int:
        return self.capacity - len(self.running) if self.state is State.UP else 0


@dataclass(order=True)
class _Request:
    priority: float
    seq: int
    key: Key = field(compare=False)
    pin: str | None = field(compare=False, default=None)
    live: bool = field(compare=False, default=True)
    models: Hashable = field(compare=False, default=None)


class DispatchError(RuntimeError):
    """A caller broke the dispatcher's contract (unknown key, double request...)."""


class Dispatcher:
    def __init__(self, affinity: Affinity | None = None) -> None:
        self.affinity = affinity
        self.servers: dict[str, Server] = {}
        self._heaps: dict[Hashable, list[_Request]] = {}  # unpinned waiting requests, per model set
        self._pinned: dict[str, deque[_Request]] = {}  # server -> pinned waiting requests
        self._waiting: dict[Key, _Request] = {}
        self._assigned: dict[Key, str] = {}
        self._free: deque[str] = deque()             # servers that may have a free slot (LRU first)
        self._in_free: set[str] = set()
        self._seq = itertools.count()

    # ------------------------------------------------------------------ servers
    def add_server(self, name: str, capacity: int = 1) -> Server:
        if capacity < 1:
            raise ValueError(f"server {name}: capacity must be >= 1, got {capacity}")
        if name in self.servers:
            raise DispatchError(f"server {name} added twice")
        server = self.servers[name] = Server(name, capacity)
        self._offer(name)
        return server

    def exclude(self, name: str, reason: str) -> list[Key]:
        """Leave ``name`` out for good; returns the jobs still assigned to it."""
        return self._set_state(name, State.EXCLUDED, reason)

    def mark_down(self, name: str, reason: str = "") -> list[Key]:
        """``name`` stopped answering. Returns the jobs assigned to it: they stay assigned
        (their fate is unknown) until the caller releases them. Requests pinned to it are
        unpinned and wait for any server."""
        return self._set_state(name, State.DOWN, reason)

    def mark_up(self, name: str) -> None:
        """A down server answers again and rejoins (excluded servers do not)."""
        server = self._server(name)
        if server.state is State.DOWN:
            server.state, server.reason = State.UP, ""
            self._offer(name)

    def _set_state(self, name: str, state: State, reason: str) -> list[Key]:
        server = self._server(name)
        if server.state is State.EXCLUDED:
            return sorted(server.running, key=str)
        server.state, server.reason = state, reason
        for req in self._pinned.pop(name, ()):
            if req.live:
                req.pin = None
                self._push(req)
        return sorted(server.running, key=str)

    @property
    def up(self) -> list[str]:
        return [s.name for s in self.servers.values() if s.state is State.UP]

    @property
    def capacity(self) -> int:
        """Slots on servers that are up."""
        return sum(s.capacity for s in self.servers.values() if s.state is State.UP)

    # ------------------------------------------------------------------ jobs
    def request(self, key: Key, *, priority: float = 0.0, pin: str | None = None, models: Hashable = None) -> None:
        """``key`` is ready to run. With ``pin`` it waits for that server while it is up;
        ``models``: the model set it loads (used with affinity)."""
        if key in self._waiting or key in self._assigned:
            raise DispatchError(f"job {key!r} is already waiting or running")
        if pin is not None and self._server(pin).state is not State.UP:
            pin = None
        req = _Request(priority, next(self._seq), key, pin, models=models)
        self._waiting[key] = req
        if pin is None:
            self._push(req)
        else:
            self._pinned.setdefault(pin, deque()).append(req)

    def cancel(self, key: Key) -> None:
        """Withdraw a waiting request (no-op if it was not waiting)."""
        req = self._waiting.pop(key, None)
        if req is not None:
            req.live = False

    def assign(self) -> list[tuple[Key, str]]:
        """Give free slots to waiting requests; returns the new (job, server) pairs."""
        out: list[tuple[Key, str]] = []
        for name in list(self._pinned):
            queue, server = self._pinned[name], self.servers[name]
            while queue and server.free > 0:
                req = queue.popleft()
                if req.live:
                    self._give(req, name, out)
            if not queue:
                del self._pinned[name]
        while self._free and self._heads():
            name = self._free[0]
            if self.servers[name].free > 0:
                self._give(self._pick(name), name, out)
            if self.servers[name].free > 0:
                self._free.rotate(-1)  # round robin among servers with several slots
            else:
                self._free.popleft()
                self._in_free.discard(name)
        return out

    def _give(self, req: _Request, name: str, out: list) -> None:
        del self._waiting[req.key]
        server = self.servers[name]
        server.running.add(req.key)
        server.dispatched += 1
        if self.affinity is not None:
            server.loaded = self.affinity.after(server.loaded, req.models)
        self._assigned[req.key] = name
        out.append((req.key, name))

    def release(self, key: Key) -> str:
        """``key`` finished (or was confirmed lost) on its server; its slot frees up."""
        name = self._assigned.pop(key, None)
        if name is None:
            raise DispatchError(f"job {key!r} is not assigned to any server")
        self.servers[name].running.discard(key)
        self._offer(name)
        return name

    def server_of(self, key: Key) -> str | None:
        return self._assigned.get(key)

    def is_waiting(self, key: Key) -> bool:
        return key in self._waiting

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._assigned)

    # ------------------------------------------------------------------ internals
    def _server(self, name: str) -> Server:
        try:
            return self.servers[name]
        except KeyError:
            raise DispatchError(f"unknown server {name!r}") from None

    def _offer(self, name: str) -> None:
        if name not in self._in_free and self.servers[name].free > 0:
            self._free.append(name)
            self._in_free.add(name)

    def _push(self, req: _Request) -> None:
        heapq.heappush(self._heaps.setdefault(req.models if self.affinity else None, []), req)

    def _heads(self) -> list[list[_Request]]:
        """The non-empty per-set heaps, dead requests dropped from their tops."""
        for group, heap in list(self._heaps.items()):
            while heap and not heap[0].live:
                heapq.heappop(heap)
            if not heap:
                del self._heaps[group]
        return list(self._heaps.values())

    def _pick(self, name: str) -> _Request:
        """The request ``name`` runs next: the best priority, or with affinity the
        cheapest to load among those within ``slack_s`` of it."""
        heaps = self._heads()
        if self.affinity is None or len(heaps) == 1:
            return heapq.heappop(min(heaps, key=lambda h: h[0]))
        return heapq.heappop(heaps[choose(self.affinity, self.servers[name].loaded, heaps)])


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
