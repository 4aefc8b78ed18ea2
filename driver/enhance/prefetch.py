"""Work prepared ahead on threads of their own, in a fixed order, at most ``ahead`` results
waiting to be taken (the enhance chunks' source files: :mod:`.dispatch`).

``prepare(item, in_order)`` makes an item's result; the part of it that must run in item
order (reading a sequential stream) runs inside ``with in_order:``, the rest (encoding a
file) on ``threads`` threads at once. ``take(item)`` returns the result once it is ready
(or raises what its preparation raised: the first failure stops the work, and every item
not ready by then raises it too). An item asked for out of order lets the threads run
past the ``ahead`` bound rather than wait forever. ``close()`` stops the threads and hands
every result not taken to ``discard`` (default: unlink a ``Path``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _unlink(result: Any) -> None:
    if isinstance(result, Path):
        result.unlink(missing_ok=True)


class _Turn:
    """``with turn:`` waits for item ``i``'s turn (items before it left their ordered part)."""

    def __init__(self, owner: Prefetch, i: int):
        self.owner, self.i = owner, i

    def __enter__(self) -> None:
        with self.owner._cond:
            while self.owner._turn != self.i and not self.owner._closed:
                self.owner._cond.wait()
            if self.owner._closed:
                raise _Closed()

    def __exit__(self, *exc) -> None:
        with self.owner._cond:
            self.owner._turn = self.i + 1
            self.owner._cond.notify_all()


class _Closed(Exception):
    pass


class Prefetch:
    def __init__(self, items: Sequence[Any], prepare: Callable[[Any, _Turn], Any], ahead: int, *,
                 threads: int = 1, discard: Callable[[Any], None] = _unlink):
        self._items = list(items)
        self._index = {id(x): i for i, x in enumerate(self._items)}
        self._prepare, self._ahead, self._discard = prepare, max(1, ahead), discard
        self._ready: dict[int, Any] = {}
        self._failed: BaseException | None = None
        self._next = 0  # the next item a thread starts
        self._turn = 0  # the item whose ordered part may run
        self._busy = 0  # items being prepared
        self._waiting = 0  # takers waiting for an item not ready yet
        self._closed = False
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"enhance-prefetch-{k}", daemon=True)
                         for k in range(max(1, min(threads, len(self._items))))]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._failed is None and self._next < len(self._items) \
                        and len(self._ready) + self._busy >= self._ahead and not self._waiting:
                    self._cond.wait()
                if self._closed or self._failed is not None or self._next >= len(self._items):
                    return
                i, self._next, self._busy = self._next, self._next + 1, self._busy + 1
            try:
                result = self._prepare(self._items[i], _Turn(self, i))
            except _Closed:
                return
            except BaseException as exc:  # noqa: BLE001 - raised again by take()
                with self._cond:
                    self._busy -= 1
                    self._failed = self._failed or exc
                    self._turn = max(self._turn, i + 1)
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy -= 1
                if self._closed:
                    self._discard(result)
                    return
                self._ready[i] = result
                self._cond.notify_all()

    def take(self, item: Any) -> Any:
        i = self._index[id(item)]
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                while i not in self._ready:
                    if self._failed is not None:
                        raise self._failed
                    if self._closed:
                        raise RuntimeError("prefetch closed")
                    self._cond.wait()
            finally:
                self._waiting -= 1
            result = self._ready.pop(i)
            self._cond.notify_all()
        return result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        with self._cond:
            for result in self._ready.values():
                self._discard(result)
            self._ready.clear()
