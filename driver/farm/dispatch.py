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
(then: the set it already runs, then priority, then request order). A request may also
carry its job's ``estimate`` (seconds): a free server leaves a job whose load there would
take longer than the job itself to a busy server that runs its model set, and stays idle
if nothing else is waiting (it is offered again at the next ``assign``). Without affinity
the choice is the best priority, as before. :mod:`driver.farm.affinity` has the costs."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

from .affinity import Affinity, choose

Key = Hashable


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
    estimate: float | None = field(compare=False, default=None)


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
    def request(self, key: Key, *, priority: float = 0.0, pin: str | None = None, models: Hashable = None,
                estimate: float | None = None) -> None:
        """``key`` is ready to run. With ``pin`` it waits for that server while it is up;
        ``models``: the model set it loads, ``estimate``: its seconds of work (both used
        with affinity)."""
        if key in self._waiting or key in self._assigned:
            raise DispatchError(f"job {key!r} is already waiting or running")
        if pin is not None and self._server(pin).state is not State.UP:
            pin = None
        req = _Request(priority, next(self._seq), key, pin, models=models, estimate=estimate)
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
        declined: set[str] = set()  # free servers that leave every waiting job to a holder of its models
        while self._free and len(declined) < len(self._free) and self._heads():
            name = self._free[0]
            pick = self._pick(name) if self.servers[name].free > 0 else None
            if pick is not None:
                self._give(pick, name, out)
                declined.clear()
            elif self.servers[name].free > 0:
                declined.add(name)
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

    def _pick(self, name: str) -> _Request | None:
        """The request ``name`` runs next: the best priority, or with affinity the
        cheapest to load among those within ``slack_s`` of it (None: with affinity, a
        free server may leave short jobs to a busy server that has their models)."""
        heaps = self._heads()
        if self.affinity is None:
            return heapq.heappop(min(heaps, key=lambda h: h[0]))
        others = [(s.loaded, s.free == 0) for s in self.servers.values() if s.name != name and s.state is State.UP]
        i = choose(self.affinity, self.servers[name].loaded, heaps, others)
        return None if i is None else heapq.heappop(heaps[i])
