"""Work prepared ahead on a thread of its own, in a fixed order, at most ``ahead`` results
waiting to be taken (the enhance chunks' source files: :mod:`.dispatch`).

``take(item)`` returns ``prepare(item)`` once it is ready (or raises what it raised: a
failed preparation stops the thread, and every later item raises the same error). An
item asked for out of order lets the thread run past the ``ahead`` bound rather than
wait forever. ``close()`` stops the thread and hands every result not taken to
``discard`` (default: unlink a ``Path``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _unlink(result: Any) -> None:
    if isinstance(result, Path):
        result.unlink(missing_ok=True)


class Prefetch:
    def __init__(self, items: Sequence[Any], prepare: Callable[[Any], Any], ahead: int,
                 discard: Callable[[Any], None] = _unlink):
        self._items = list(items)
        self._index = {id(x): i for i, x in enumerate(self._items)}
        self._prepare, self._ahead, self._discard = prepare, max(1, ahead), discard
        self._ready: dict[int, Any] = {}
        self._failed: BaseException | None = None
        self._waiting = 0  # takers waiting for an item not ready yet
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="enhance-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, item in enumerate(self._items):
            with self._cond:
                while not self._closed and len(self._ready) >= self._ahead and not self._waiting:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                result = self._prepare(item)
            except BaseException as exc:  # noqa: BLE001 - raised again by take()
                with self._cond:
                    self._failed = exc
                    self._cond.notify_all()
                return
            with self._cond:
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
        self._thread.join()
        with self._cond:
            for result in self._ready.values():
                self._discard(result)
            self._ready.clear()
