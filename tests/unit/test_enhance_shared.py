"""driver.enhance.shared: one decode of the input for the chunk files and the final encode."""

from __future__ import annotations

import threading

import pytest

from driver.enhance.shared import SharedFrames


class Counted:
    """A stream of 0..n-1 that counts what it reads and how often it was opened; ``bad`` raises there."""

    def __init__(self, n: int, bad: int | None = None):
        self.n, self.bad = n, bad
        self.reads = 0
        self.opened = 0

    def open(self):
        self.opened += 1
        for i in range(self.n):
            if i == self.bad:
                raise ValueError(f"bad packet at frame {i}")
            self.reads += 1
            yield i


def shared(stream: Counted, upto: dict, cap: int = 1 << 30) -> SharedFrames[int]:
    return SharedFrames(stream.open(), stream.open, upto, lambda _: 1, cap_bytes=cap)


def test_two_consumers_get_every_frame_and_the_stream_is_read_once():
    stream = Counted(50)
    s = shared(stream, {"chunks": None, "encode": None})
    chunks, encode = s.take("chunks"), s.take("encode")
    assert chunks is not None and encode is not None
    got_chunks = [next(chunks) for _ in range(30)]  # the prefetch runs ahead
    got_encode = list(encode)  # the encode reads 30 queued frames, then the rest itself
    got_chunks += list(chunks)  # and queued the rest for the prefetch
    assert got_chunks == got_encode == list(range(50))
    assert stream.reads == 50 and stream.opened == 1 and s.reopened == 0


def test_a_consumer_is_given_its_frames_once():
    s = shared(Counted(5), {"chunks": None, "encode": None})
    assert s.take("encode") is not None
    assert s.take("encode") is None  # the caller reads a stream of its own


def test_upto_ends_a_consumer_and_nothing_after_it_is_queued_for_it():
    stream = Counted(40)
    s = shared(stream, {"chunks": 9, "encode": None})
    chunks, encode = s.take("chunks"), s.take("encode")
    assert list(encode) == list(range(40))
    c = s._consumers["chunks"]
    assert len(c.queue) == 10 and c.queued_bytes == 10  # frames 0..9 only
    assert list(chunks) == list(range(10))
    assert stream.reads == 40 and s.reopened == 0


def test_a_queue_over_the_cap_is_dropped_and_its_consumer_decodes_on_its_own():
    stream = Counted(100)
    s = shared(stream, {"chunks": None, "encode": None}, cap=16)
    chunks, encode = s.take("chunks"), s.take("encode")
    first = [next(encode) for _ in range(5)]
    ahead = [next(chunks) for _ in range(60)]  # the encode falls 55 frames behind: over the cap
    enc = s._consumers["encode"]
    assert enc.detached and not enc.queue and enc.queued_bytes == 0  # nothing held for it any more
    assert first + list(encode) == list(range(100))  # its own stream, from frame 5 on
    assert ahead + list(chunks) == list(range(100))
    assert s.reopened == 1 and stream.opened == 2


def test_a_consumer_that_never_comes_holds_at_most_the_cap():
    s = shared(Counted(100), {"chunks": None, "encode": None}, cap=10)
    assert list(s.take("chunks")) == list(range(100))
    enc = s._consumers["encode"]
    assert enc.detached and enc.queued_bytes == 0
    assert list(s.take("encode")) == list(range(100))


def test_a_closed_consumer_is_not_queued_for():
    s = shared(Counted(30), {"chunks": None, "encode": None})
    chunks, encode = s.take("chunks"), s.take("encode")
    next(chunks)
    chunks.close()  # the prefetch stopped
    assert list(encode) == list(range(30))
    assert not s._consumers["chunks"].queue


def test_a_bad_frame_raises_in_the_reader_and_the_other_consumer_meets_it_at_the_same_frame():
    stream = Counted(20, bad=12)
    s = shared(stream, {"chunks": None, "encode": None})
    chunks, encode = s.take("chunks"), s.take("encode")
    got = []
    with pytest.raises(ValueError, match="frame 12"):
        for f in chunks:
            got.append(f)
    assert got == list(range(12))
    later = []
    with pytest.raises(ValueError, match="frame 12"):
        for f in encode:  # the 12 queued frames first, then its own stream fails at the same place
            later.append(f)
    assert later == list(range(12))


def test_the_shared_stream_is_closed_once_no_consumer_reads_it():
    closed = threading.Event()

    def source():
        try:
            yield from range(10)
        finally:
            closed.set()

    s = SharedFrames(source(), lambda: iter(range(10)), {"chunks": 4, "encode": None}, lambda _: 1)
    assert list(s.take("chunks")) == list(range(5))
    assert not closed.is_set()  # the encode still reads it
    assert list(s.take("encode")) == list(range(10))
    assert closed.is_set()


def test_two_threads_reading_at_once_get_the_whole_stream_each():
    stream = Counted(3000)
    s = shared(stream, {"chunks": None, "encode": None})
    out: dict[str, list[int]] = {}

    def read(name):
        out[name] = list(s.take(name))

    threads = [threading.Thread(target=read, args=(n,)) for n in ("chunks", "encode")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out["chunks"] == out["encode"] == list(range(3000))
    assert stream.reads == 3000 and s.reopened == 0
