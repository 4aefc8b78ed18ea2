"""The enhance command's work written ahead (driver.enhance.prefetch) and where it writes
uncompressed chunks (driver.enhance.batch.on_this_machine)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from driver.enhance.batch import on_this_machine
from driver.enhance.prefetch import Prefetch
from driver.farm.backend import FarmOptions


def test_results_in_order_at_most_ahead_waiting():
    started: list[int] = []
    pf = Prefetch(list(range(6)), lambda i, _: started.append(i) or i * 10, ahead=2, discard=lambda r: None)
    time.sleep(0.2)
    assert started == [0, 1]  # two ready, nobody took them: the thread waits
    assert [pf.take(i) for i in range(6)] == [0, 10, 20, 30, 40, 50]
    pf.close()


def test_out_of_order_take_runs_past_the_bound():
    items = list(range(5))
    pf = Prefetch(items, lambda i, _: i, ahead=1, discard=lambda r: None)
    assert pf.take(items[3]) == 3  # would wait forever if the bound held
    assert [pf.take(items[i]) for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    pf.close()


def test_a_failure_is_raised_for_its_item_and_every_later_one():
    def prepare(i, _):
        if i == 2:
            raise OSError(28, "No space left on device")
        return i

    items = list(range(4))
    pf = Prefetch(items, prepare, ahead=4, discard=lambda r: None)
    assert pf.take(items[0]) == 0 and pf.take(items[1]) == 1
    for i in (2, 3):
        with pytest.raises(OSError, match="No space"):
            pf.take(items[i])
    pf.close()


def test_close_discards_what_was_not_taken(tmp_path):
    def prepare(i, _):
        path = tmp_path / f"in_{i}.nut"
        path.write_bytes(b"x")
        return path

    items = list(range(5))
    pf = Prefetch(items, prepare, ahead=2)
    assert pf.take(items[0]).name == "in_0.nut"
    time.sleep(0.2)
    pf.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in_0.nut"]  # the taken one is the taker's


def test_close_while_preparing_stops_and_discards(tmp_path):
    gate = threading.Event()

    def prepare(i, _):
        gate.wait(5)
        path = tmp_path / f"in_{i}.nut"
        path.write_bytes(b"x")
        return path

    pf = Prefetch([0, 1], prepare, ahead=2)
    threading.Timer(0.2, gate.set).start()
    pf.close()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("threads", [1, 3])
def test_ordered_parts_run_in_item_order_the_rest_side_by_side(threads):
    """Each item's ordered part (reading a stream) runs in item order whichever thread has it;
    with several threads the unordered parts (encoding) overlap."""
    log: list[int] = []
    running, most = [0], [0]
    lock = threading.Lock()

    def prepare(i, in_order):
        with in_order:
            log.append(i)
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return i

    items = list(range(8))
    pf = Prefetch(items, prepare, ahead=8, threads=threads, discard=lambda r: None)
    assert [pf.take(x) for x in items] == items
    pf.close()
    assert log == items
    assert (most[0] > 1) is (threads > 1)


@pytest.mark.parametrize("servers,expected", [
    ([], True),  # a local ComfyUI is started
    (["http://127.0.0.1:8188"], True),
    (["http://localhost:8188", "127.0.0.1:9000"], True),
    (["http://[::1]:8188"], True),
    (["http://127.0.0.1:8188", "http://10.0.0.5:8188"], False),
    (["https://abc-8188.proxy.runpod.net"], False),
])
def test_uncompressed_chunks_only_for_servers_on_this_machine(servers, expected):
    assert on_this_machine(FarmOptions(servers=servers)) is expected


def test_no_uncompressed_chunks_for_pods_or_endpoints():
    assert not on_this_machine(FarmOptions(endpoint="runpod:abc"))
    assert not on_this_machine(FarmOptions(farm="runpod"))


def test_raw_chunks_reach_the_chunk_out_node():
    from fractions import Fraction

    from driver.enhance.plan import Chunk
    from driver.enhance.render import TEMPLATE, ChunkSettings, bind
    from driver.render.workflow import find, load_template

    c = Chunk(0, 0, 3, 0, 3, 0, 3)
    for raw in (False, True):
        s = ChunkSettings(Fraction(24), Fraction(48), "keep_holds", 8, (64, 48), (64, 48), raw_chunks=raw)
        prompt = bind(load_template(TEMPLATE), c, "x.nut", "mm", s)
        (out,) = find(prompt, "Chunk Out")
        assert prompt[out]["inputs"].get("raw", False) is raw
    assert Path(TEMPLATE).is_file()
