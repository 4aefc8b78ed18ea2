"""One sequential frame stream read by several consumers at their own pace, decoded once.

An enhance run reads its input in order twice after the analysis: the chunk files (the
prefetch thread, ahead of the renders) and the copies of the final encode (behind them).
:class:`SharedFrames` decodes each frame once for both: whichever consumer needs a frame
nobody has read yet reads it and queues it for the others.

Nothing ever waits for another consumer: the renders wait for the prefetch and the encode
waits for the renders, so a consumer that waited for a slower one could stall the run.
Instead a queue that grows past ``cap_bytes`` (a consumer far behind, or one that never
comes) is dropped, and its consumer reads a stream of its own from then on (``reopen()``:
the same frames from the start, the ones it already had skipped): what a second decode
always cost, and no more. A consumer's ``upto`` (the last index it takes) ends its stream
there, and nothing after it is queued for it. A read that raises (a bad packet) raises in
the consumer that read it; the others meet the same error at the same frame in streams of
their own."""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

T = TypeVar("T")
log = logging.getLogger(__name__)

#: bytes one consumer's queue may hold before it is dropped (the final encode lags the
#: prefetch by a few chunks: ~100 frames of 720p YUV 4:2:0 are 140 MB)
CAP_BYTES = 256 << 20


@dataclass
class _Consumer:
    name: str
    upto: int | None  # last index taken (None: to the end)
    queue: deque = field(default_factory=deque)  # frames read by others, not taken yet
    queued_bytes: int = 0
    own: Iterator | None = None  # a stream of its own (dropped queue, or the shared one failed)
    detached: bool = False  # reads a stream of its own from its next frame on
    taken: bool = False  # take() was called
    finished: bool = False  # ended or closed: nothing more is queued for it

    def wants(self, index: int) -> bool:
        return not (self.detached or self.finished) and (self.upto is None or index <= self.upto)


_END = object()


class SharedFrames(Generic[T]):
    """``source``: the stream, read once; ``reopen()``: the same stream again from its start;
    ``upto``: consumer name -> last index it takes (None: all); ``nbytes(frame)``: what a
    queued frame holds."""

    def __init__(self, source: Iterator[T], reopen: Callable[[], Iterator[T]], upto: dict[str, int | None],
                 nbytes: Callable[[T], int], cap_bytes: int = CAP_BYTES, name: str = "frames"):
        self._source, self._reopen, self._nbytes, self._cap = source, reopen, nbytes, cap_bytes
        self.name = name
        self._consumers = {key: _Consumer(key, last) for key, last in upto.items()}
        self._reading = threading.Lock()  # one reader of the shared stream at a time
        self._state = threading.Lock()  # the queues and flags
        self._read = 0  # frames read from the shared stream
        self._ended = False
        self._broken = False
        self.reopened = 0  # streams of their own opened (for tests and logs)

    def take(self, name: str) -> Iterator[T] | None:
        """Consumer ``name``'s frames; None when they were taken already (once each)."""
        c = self._consumers[name]
        with self._state:
            if c.taken:
                return None
            c.taken = True
        return self._frames(c)

    def _frames(self, c: _Consumer) -> Iterator[T]:
        index = 0
        try:
            while c.upto is None or index <= c.upto:
                frame = self._next(c, index)
                if frame is _END:
                    return
                yield frame
                index += 1
        finally:
            with self._state:
                c.finished, c.queued_bytes = True, 0
                c.queue.clear()
            self._close_if_unused()

    def _next(self, c: _Consumer, index: int):
        with self._state:
            if c.queue:
                return self._pop(c)
        if c.own is None:
            with self._reading:  # one reader; a frame another consumer read meanwhile is queued
                with self._state:
                    if c.queue:
                        return self._pop(c)
                    shared = not (c.detached or self._broken)
                    if shared and self._ended:
                        return _END
                if shared:
                    return self._read_shared(c, index)
                log.debug("%s: %s reads on its own from frame %d (%s)", self.name, c.name, index,
                          "the shared read failed" if self._broken else "it fell too far behind")
                c.own = itertools.islice(self._reopen(), index, None)
                self.reopened += 1
        return next(c.own, _END)

    def _pop(self, c: _Consumer):
        frame = c.queue.popleft()
        c.queued_bytes -= self._nbytes(frame)
        return frame

    def _read_shared(self, c: _Consumer, index: int):
        """The next frame of the shared stream, queued for the other consumers that want it
        (``index``: ``c`` has every frame before it; called holding the reading lock)."""
        assert index == self._read, (index, self._read)
        try:
            item = next(self._source, _END)
        except BaseException:
            self._broken = True
            raise
        with self._state:
            if item is _END:
                self._ended = True
                return _END
            frame = cast(T, item)
            self._read += 1
            for other in self._consumers.values():
                if other is c or not other.wants(index):
                    continue
                other.queue.append(frame)
                other.queued_bytes += self._nbytes(frame)
                if other.queued_bytes > self._cap:  # far behind (or never coming): it reads on its own
                    other.queue.clear()
                    other.queued_bytes, other.detached = 0, True
            return frame

    def _close_if_unused(self) -> None:
        """Close the shared stream once no consumer can read from it any more."""
        with self._state:
            if not all(x.finished or x.detached for x in self._consumers.values()):
                return
        close = getattr(self._source, "close", None)
        if close is not None:
            with self._reading:
                close()
