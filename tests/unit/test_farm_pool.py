"""The threaded pool: per-server preflight, leases by priority, health checks (down,
rejoin, re-preflight), stopping (fatal error, cancel, every server down)."""

from __future__ import annotations

import threading

import pytest

from driver.errors import Cancelled, PreflightFailed
from driver.farm.errors import BudgetExceeded, NoServerAvailable, PackMissing
from driver.farm.images import POD_IMAGE
from driver.farm.pool import Member, ServerPool
from tests.unit.farm_fakes import fake_pool


def _missing_pack(member: Member):
    if member.name.startswith("http://fake0"):
        raise PreflightFailed("1 problem", problems=[
            "S01T01 S01T01-video: node 'Push' (AP_HeldFramePush): node type AP_HeldFramePush does not exist "
            "(the anime_pipeline pack is not installed on this server, or failed to import: check its log)"],
            missing_types=["AP_HeldFramePush"])  # as driver.render.preflight.check reports it


def test_preflight_leaves_out_a_server_without_the_pack_and_names_the_image():
    pool, _ = fake_pool(3)
    pool.preflight(_missing_pack)
    states = {s["server"]: s["state"] for s in pool.summary()}
    assert states == {"http://fake0:8188": "excluded", "http://fake1:8188": "up", "http://fake2:8188": "up"}
    reason = next(s["reason"] for s in pool.summary() if s["state"] == "excluded")
    assert "anime_pipeline pack" in reason and POD_IMAGE in reason
    assert pool.capacity == 2


def test_preflight_fails_when_no_server_can_serve_listing_each():
    pool, _ = fake_pool(2)

    def broken(member):
        raise PreflightFailed("x", problems=[f"model foo.safetensors missing on {member.name}"])
    with pytest.raises(PreflightFailed) as err:
        pool.preflight(broken)
    assert len(err.value.problems) == 2 and "fake1" in str(err.value)


def test_a_pack_problem_alone_gives_pack_missing():
    pool, _ = fake_pool(1)
    with pytest.raises(PreflightFailed) as err:
        pool.preflight(_missing_pack)
    assert any(POD_IMAGE in p for p in err.value.problems)
    assert isinstance(PackMissing("x"), PreflightFailed)


def test_health_checks_mark_down_and_a_server_that_answers_again_rejoins():
    checks = []
    pool, servers = fake_pool(2, down_after=2, rejoin_check=lambda m: checks.append(m.name))
    servers[1].down = True
    pool.probe_round()
    assert pool.state(servers[1].url) == "up"  # one miss is not enough
    pool.probe_round()
    assert pool.state(servers[1].url) == "down" and pool.capacity == 1
    pool.members[servers[1].url].uploaded.add("ap/x/in.png")
    servers[1].down = False
    pool.probe_round()
    assert pool.state(servers[1].url) == "up" and checks == [servers[1].url]
    assert not pool.members[servers[1].url].uploaded  # inputs are uploaded again after a restart


def test_a_server_that_comes_back_without_what_the_plan_needs_is_left_out():
    def check(member):
        raise PreflightFailed("models gone", problems=["model wan.safetensors is not on the server"])
    pool, servers = fake_pool(2, down_after=1, rejoin_check=check)
    servers[0].down = True
    pool.probe_round()
    servers[0].down = False
    pool.probe_round()
    assert pool.state(servers[0].url) == "excluded"
    assert any("fails preflight" in m for m in pool.messages)


def test_waiting_jobs_get_the_free_slot_by_priority():
    pool, _ = fake_pool(1)
    first = pool.acquire()
    got: list[str] = []

    def want(label, prio):
        with pool.lease(priority=prio):
            got.append(label)
    threads = [threading.Thread(target=want, args=("low", 5.0)), threading.Thread(target=want, args=("high", 1.0))]
    for t in threads:
        t.start()
    while pool._disp.waiting < 2:  # both requests are queued in the dispatcher
        threading.Event().wait(0.01)
    pool.release(first)
    for t in threads:
        t.join(10)
    assert got == ["high", "low"]


def test_pinned_lease_goes_to_its_server():
    pool, servers = fake_pool(3)
    with pool.lease(pin=servers[2].url) as lease:
        assert lease.member.name == servers[2].url


def test_fatal_error_and_cancel_wake_waiting_jobs():
    pool, _ = fake_pool(1)
    held = pool.acquire()
    errors = []

    def wait_for_slot():
        try:
            pool.acquire()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    t = threading.Thread(target=wait_for_slot)
    t.start()
    while pool._disp.waiting < 1:
        threading.Event().wait(0.01)
    pool.hooks.append(lambda: (_ for _ in ()).throw(BudgetExceeded("spent $5.01 of $5.00")))
    pool.probe_round()  # the cost guard runs with the health checks
    t.join(10)
    assert isinstance(errors[0], BudgetExceeded) and pool.fatal is errors[0]
    pool.release(held)

    pool2, _ = fake_pool(1)
    pool2.cancel()
    with pytest.raises(Cancelled):
        pool2.acquire()


def test_every_server_down_raises_no_server_available():
    pool, servers = fake_pool(2, down_after=1, all_down_timeout_s=0.0)
    for s in servers:
        s.down = True
    pool.probe_round()
    with pytest.raises(NoServerAvailable, match="no server of the pool has answered"):
        pool.acquire()


def test_pool_refuses_duplicates_and_emptiness():
    pool, servers = fake_pool(1)
    with pytest.raises(Exception, match="twice"):
        ServerPool([pool.members[servers[0].url], pool.members[servers[0].url]])
    with pytest.raises(NoServerAvailable):
        ServerPool([])


def test_watcher_thread_starts_and_stops():
    pool, servers = fake_pool(1, health_interval_s=0.01, down_after=1)
    servers[0].down = True
    with pool:
        while pool.state(servers[0].url) != "down":
            threading.Event().wait(0.01)
    assert pool._watcher is not None and not pool._watcher.is_alive()


def test_a_job_held_back_for_a_busy_servers_models_goes_elsewhere_when_it_is_reported_down():
    from driver.farm.affinity import LoadCosts
    from driver.render.models import Loader

    ckpt = frozenset({Loader("checkpoint", "CheckpointLoaderSimple", ("sd_xl_base_1.0.safetensors",), "sig")})
    pool, servers = fake_pool(2, affinity=LoadCosts())  # 6.9 GB from a network volume: ~23 s
    first = pool.acquire(priority=0.0, models=ckpt, estimate=4.0)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(priority=1.0, models=ckpt, estimate=4.0)
                                                        .member.name))
    waiter.start()
    while pool._disp.waiting < 1:
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)
    assert got == []  # the free server leaves the 4 s keyframe to the one that has the checkpoint
    pool.report_unreachable(first.member.name, "test")
    waiter.join(10)
    assert got == [next(s.url for s in servers if s.url != first.member.name)]
