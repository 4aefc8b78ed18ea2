"""Every run renders through the pool, which opens only when a job needs a slot, on the main
thread (signals land there: Ctrl-C while a local ComfyUI or a pod starts must stop it); a
failure to open stops the run from ``map_shots`` like a shot thread's error."""

from __future__ import annotations

import threading

import pytest

from driver.errors import Cancelled, PreflightFailed
from driver.farm.opening import Opening
from driver.farm.pool import ServerPool
from driver.farm.pool_executor import PoolExecutor
from driver.render.executor import server_input_names
from tests.unit.farm_fakes import FarmServer, fake_member


class Opener:
    def __init__(self, fail: BaseException | None = None):
        self.threads: list[str] = []
        self.fail = fail

    def __call__(self) -> ServerPool:
        self.threads.append(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        return ServerPool([fake_member(FarmServer("http://fake0:8188"))])


def _executor(opener: Opener) -> PoolExecutor:
    return PoolExecutor(opener=Opening(opener), input_names=lambda files: server_input_names("R", files), threads=3)


def test_nothing_to_render_opens_nothing():
    opener = Opener()
    with _executor(opener) as ex:
        ex.map_shots(["S1", "S2", "S3"], lambda shot: ex.input_names({}))  # every job unchanged: no slot asked
        assert ex.server == "pool" and opener.threads == []


def test_the_first_slot_opens_the_pool_once_on_the_main_thread():
    opener = Opener()
    held: list[str] = []

    def shot(name: str) -> None:
        with ex.slot(None) as member:
            held.append(member.name)

    with _executor(opener) as ex:
        ex.map_shots(["S1", "S2", "S3", "S4"], shot)
    assert opener.threads == [threading.main_thread().name]
    assert held == ["http://fake0:8188"] * 4


def test_a_pool_that_cannot_open_stops_the_run_from_map_shots():
    opener = Opener(fail=PreflightFailed("no server can run this plan; nothing was queued"))
    def shot(name: str) -> None:
        with ex.slot(None):
            pytest.fail("no slot without a pool")

    with _executor(opener) as ex, pytest.raises(PreflightFailed, match="nothing was queued"):
        ex.map_shots(["S1", "S2", "S3"], shot)
    assert opener.threads == [threading.main_thread().name]  # tried once, not once per shot thread


def test_closing_releases_a_thread_waiting_for_the_pool():
    opening = Opening(Opener())
    opening.serve_from(threading.main_thread())  # nobody serves: the waiter waits until close
    got: list[BaseException] = []

    def wait() -> None:
        try:
            opening.get()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            got.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    t.join(0.3)
    assert t.is_alive() and opening.wanted()
    opening.close()
    t.join(5)
    assert isinstance(got[0], Cancelled)
