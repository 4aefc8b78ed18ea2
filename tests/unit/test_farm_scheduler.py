"""The driver's scheduler on a pool of in-memory servers: shots spread over the servers
(one job in flight per server), a server dying mid-job (the job is confirmed lost and
resubmitted elsewhere, exactly once in the manifest), a server that keeps the job after
losing contact (followed there, not resubmitted), and resume (a rerun submits nothing)."""

from __future__ import annotations

import threading

import pytest

from driver.config import load_config
from driver.farm.errors import NoServerAvailable
from driver.farm.pool import ServerPool
from driver.farm.pool_executor import PoolExecutor
from driver.farm.priorities import plan_priorities
from driver.outputs.approvals import Approvals
from driver.outputs.manifest import Manifest
from driver.progress import Reporter
from driver.render.compile import Compiler
from driver.render.scheduler import Scheduler
from driver.story.plan import make_plan, shot_planner
from driver.story.storyboard import REPO_ROOT, load_storyboard
from tests.unit.driver_fakes import png, shot, write_storyboard
from tests.unit.farm_fakes import FarmServer, fake_member

SHOTS = [shot(1, 1, "held_frame_push", keyframes={"hero": "still.png"}, characters_in_shot=["AKI"]),
         shot(1, 2, "standard_flf", duration_s=2.0),
         shot(2, 1, "held_frame_static"),
         shot(2, 2, "triptych_split_flf"),
         shot(3, 1, "held_frame_static", seed=77)]


class FarmRun:
    def __init__(self, tmp_path, shots=SHOTS):
        png(tmp_path / "sb" / "still.png")
        self.sb_path = write_storyboard(tmp_path / "sb", shots)
        self.run_dir = tmp_path / "run"

    def __call__(self, servers, *, lost_after_s=0.0, **member_kw):
        sb = load_storyboard(self.sb_path)
        cfg = load_config(None)
        manifest = Manifest.open(self.run_dir, run_id="TST-EP007-x", storyboard=sb, config=cfg, repo=REPO_ROOT)
        plan = make_plan(sb, cfg)
        self.pool = ServerPool([fake_member(s, **member_kw) for s in servers], all_down_timeout_s=0.0)
        executor = PoolExecutor(self.pool, job_timeout_s=60, lost_after_s=lost_after_s,
                                priorities=plan_priorities(plan.jobs))
        sched = Scheduler(
            storyboard=sb, compiler=Compiler(sb, cfg, manifest.run_id), manifest=manifest,
            jobs_for=shot_planner(sb, cfg),
            executor=executor, approvals=Approvals.load(self.run_dir), reporter=Reporter(), max_retakes=2)
        with executor:
            result = sched.run(sb.shots)
        manifest.save()
        self.manifest = Manifest.load(self.run_dir)
        return result

    def attempts(self):
        for rec in self.manifest.data["shots"].values():
            for jid, job in rec["jobs"].items():
                for att in job["attempts"]:
                    yield jid, att


def _servers(n):
    return [FarmServer(f"http://fake{i}:8188") for i in range(n)]


def test_shots_spread_over_the_servers_one_job_each_and_resume_submits_nothing(tmp_path):
    run, servers = FarmRun(tmp_path), _servers(3)
    gate = threading.Event()
    for s in servers:
        s.gate_event = gate
    threading.Timer(0.2, gate.set).start()  # lets jobs pile up on every server before any finishes
    result = run(servers)
    assert not result.failures and result.rendered == sum(len(s.submitted) for s in servers)
    assert all(rec["status"] == "done" for rec in run.manifest.data["shots"].values())
    used = {att["server"] for _, att in run.attempts()}
    assert used <= {s.url for s in servers} and len(used) >= 2
    assert max(s.peak for s in servers) == 1  # never more than one job in flight per server
    for jid, att in run.attempts():  # each attempt ran where the manifest says
        assert att["prompt_id"] in next(s for s in servers if s.url == att["server"]).submitted, jid
    before = [list(s.submitted) for s in servers]
    again = run(servers)
    assert again.rendered == 0 and [s.submitted for s in servers] == before


def test_a_server_dying_mid_job_loses_nothing_and_duplicates_nothing(tmp_path):
    run, servers = FarmRun(tmp_path), _servers(2)
    servers[0].die_on = servers[1].die_on = {"S01T02-video"}  # whichever gets it dies, once
    result = run(servers)
    assert not result.failures
    video = run.manifest.data["shots"]["S01T02"]["jobs"]["S01T02-video"]
    (att,) = video["attempts"]
    assert video["status"] == "done" and att["status"] == "done"
    dead = next(s for s in servers if s.down)
    alive = next(s for s in servers if not s.down)
    assert att["server"] == alive.url and att["prompt_id"].endswith("-r2")
    assert att["prompt_id"] in alive.submitted
    assert sum(1 for p in dead.submitted if "S01T02-video" in p) == 1
    states = {s["server"]: s for s in run.pool.summary()}
    assert states[dead.url]["state"] == "down" and states[dead.url]["lost"] == 1
    # every job done exactly once among the recorded attempts
    done = [jid for jid, a in run.attempts() if a["status"] == "done"]
    assert len(done) == len(set(done))


class _LoseFirstVideoSubmission(set):
    """``lose_after_submit`` of the fake client: contact is lost right after the video
    job is queued (the server keeps running it)."""

    def __contains__(self, prompt_id):
        return "S02T01-video" in prompt_id


def test_a_job_the_server_still_holds_is_followed_there_not_resubmitted(tmp_path):
    run = FarmRun(tmp_path, [shot(2, 1, "held_frame_static", keyframes={"hero": "still.png"})])
    servers = _servers(2)
    result = run(servers, lose_after_submit=_LoseFirstVideoSubmission())
    assert not result.failures
    (att,) = run.manifest.data["shots"]["S02T01"]["jobs"]["S02T01-video"]["attempts"]
    holder = next(s for s in servers if s.url == att["server"])
    assert holder.submitted == [att["prompt_id"]] and not att["prompt_id"].endswith("-r2")
    assert not any(s.submitted for s in servers if s is not holder)
    assert att["status"] == "done"


def test_every_server_dead_stops_the_run_resumably(tmp_path):
    run, servers = FarmRun(tmp_path, [shot(2, 1, "held_frame_static")]), _servers(1)
    servers[0].die_on = {"S02T01-video"}
    with pytest.raises(NoServerAvailable):
        run(servers)
    servers[0].down = False  # it comes back: the rerun finishes the shot
    result = run(servers)
    assert not result.failures and result.rendered == 1
