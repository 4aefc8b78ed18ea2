"""Scheduler + executor against an in-memory server: resume by hashes, in-flight jobs
looked up before resubmitting, retakes on gate failure, per-shot failures, review stop."""

import json

import pytest

from driver.outputs.approvals import Approvals
from driver.render.compile import Compiler
from driver.config import load_config
from driver.errors import LostContact
from driver.render.executor import ComfyExecutor
from driver.files import sha256_file
from driver.outputs.manifest import Manifest
from driver.story.plan import derive_seed, shot_planner
from driver.progress import Reporter
from driver.render.scheduler import Scheduler
from driver.story.storyboard import REPO_ROOT, load_storyboard
from tests.unit.driver_fakes import FakeClient, FakeServer, png, shot, write_storyboard


class Run:
    """One invocation of the driver against ``client`` (a fresh scheduler each time)."""

    def __init__(self, tmp_path, shots, **top):
        self.tmp = tmp_path
        png(tmp_path / "sb" / "still.png")
        self.sb_path = write_storyboard(tmp_path / "sb", shots, **top)
        self.run_dir = tmp_path / "run"

    def __call__(self, client, stage="all", max_retakes=2, only=None):
        sb = load_storyboard(self.sb_path)
        cfg = load_config(None)
        manifest = Manifest.open(self.run_dir, run_id="TST-EP007-x", storyboard=sb, config=cfg, repo=REPO_ROOT)
        approvals = Approvals.load(self.run_dir)
        sched = Scheduler(
            storyboard=sb, compiler=Compiler(sb, cfg, manifest.run_id), manifest=manifest,
            jobs_for=shot_planner(sb, cfg),
            executor=ComfyExecutor(client, run_id=manifest.run_id, job_timeout=60), approvals=approvals,
            reporter=Reporter(), stage=stage, max_retakes=max_retakes)
        try:
            result = sched.run([s for s in sb.shots if not only or s.id in only])
        finally:
            approvals.save()
        self.manifest = Manifest.load(self.run_dir)
        return result

    def shot(self, sid):
        return self.manifest.data["shots"][sid]

    def job(self, sid, suffix="video"):
        return self.shot(sid)["jobs"][f"{sid}-{suffix}"]


SHOTS = [shot(1, 1, "held_frame_push", keyframes={"hero": "still.png"}, characters_in_shot=["AKI"]),
         shot(1, 2, "standard_flf", duration_s=2.0),
         shot(2, 1, "held_frame_static")]


def test_full_run_names_assets_and_records_everything(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    result = run(FakeClient(server))
    assert not result.failures and result.rendered == 6
    assets = run.shot("S01T02")["assets"]
    assert assets["video"]["path"] == "clips/TST_EP007_S01_T02_NOCHAR_video.mp4"
    assert assets["first"]["path"] == "keyframes/TST_EP007_S01_T02_NOCHAR_first.png"
    assert run.shot("S01T01")["assets"]["video"]["path"] == "clips/TST_EP007_S01_T01_AKI_video.mp4"
    att = run.job("S01T02")["attempts"][0]
    assert (run.run_dir / "attempts" / "TST_EP007_S01_T02_NOCHAR_video_a1.mp4").is_file()
    assert att["prompt_id"].startswith("TST-EP007-x-S01T02-video-a1-") and att["server"] == "http://fake:8188"
    assert run.manifest.workflow(att) and len(att["workflow_sha256"]) == 64 and att["passed"] is True
    assert att["timings"]["execution_s"] == 0.25 and att["timings"]["download_s"] is not None
    assert {i["role"] for i in att["inputs"]} == {"first", "last"}
    for f in att["outputs"]:
        assert sha256_file(run.run_dir / f["path"]) == f["sha256"]
    assert att["gate_report"]["passed"] is True and (run.run_dir / att["report_file"]["path"]).is_file()
    assert run.manifest.data["storyboard"]["sha256"] and run.manifest.data["driver"]["version"]


def test_rerun_submits_nothing(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    run(FakeClient(server))
    before = list(server.submitted)
    result = run(FakeClient(server))
    assert server.submitted == before and result.rendered == 0 and result.skipped == 6


def test_editing_one_shot_rerenders_that_shot_alone(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    run(FakeClient(server))
    before = len(server.submitted)
    doc = json.loads(run.sb_path.read_text())
    doc["shots"][1]["motion_prompt"] = "runs instead"
    run.sb_path.write_text(json.dumps(doc))
    run(FakeClient(server))
    new = server.submitted[before:]
    assert len(new) == 1 and "-S01T02-video-a1-" in new[0]
    assert run.job("S01T02")["superseded"][0]["attempts"][0]["prompt_id"] != new[0]


def test_a_changed_keyframe_rerenders_the_video_that_uses_it(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    run(FakeClient(server))
    before = len(server.submitted)
    png(tmp_path / "sb" / "still.png", colour=(10, 200, 10))
    run(FakeClient(server))
    assert [p.split("-a1-")[0] for p in server.submitted[before:]] == ["TST-EP007-x-S01T01-video"]


def test_a_damaged_asset_is_restored_without_rendering_when_its_attempt_is_intact(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    run(FakeClient(server))
    before = len(server.submitted)
    asset = run.run_dir / run.shot("S02T01")["assets"]["video"]["path"]
    recorded = run.shot("S02T01")["assets"]["video"]["sha256"]
    asset.unlink()
    asset.write_bytes(b"corrupt")
    run(FakeClient(server))
    assert len(server.submitted) == before and sha256_file(asset) == recorded
    # with the attempt file damaged too, the job is rendered again
    for f in run.job("S02T01")["attempts"][0]["outputs"]:
        (run.run_dir / f["path"]).write_bytes(b"x")
    asset.write_bytes(b"x")
    run(FakeClient(server))
    assert len(server.submitted) == before + 1


def test_in_flight_job_is_collected_from_the_server_not_resubmitted(tmp_path):
    run, server = Run(tmp_path, [SHOTS[1]]), FakeServer()
    prompt_ids = []
    probe = FakeClient(FakeServer())
    run(probe)  # learn the deterministic prompt ids on a throwaway server
    prompt_ids = [p for p in probe.server.submitted if "-video-" in p]
    (tmp_path / "run" / "run_manifest.json").unlink()
    with pytest.raises(LostContact):
        run(FakeClient(server, lose_after_submit=set(prompt_ids)))
    att = Manifest.load(run.run_dir).data["shots"]["S01T02"]["jobs"]["S01T02-video"]["attempts"][0]
    assert att["status"] == "submitted" and att["prompt_id"] == prompt_ids[0]
    submitted = list(server.submitted)
    result = run(FakeClient(server))  # the job is still queued there: wait for it
    assert server.submitted == submitted and not result.failures
    assert run.job("S01T02")["status"] == "done"


def test_in_flight_job_unknown_after_a_restart_is_resubmitted_under_a_new_id(tmp_path):
    run, server = Run(tmp_path, [SHOTS[1]]), FakeServer()
    probe = FakeClient(FakeServer())
    run(probe)
    vid = [p for p in probe.server.submitted if "-video-" in p]
    (tmp_path / "run" / "run_manifest.json").unlink()
    with pytest.raises(LostContact):
        run(FakeClient(server, lose_after_submit=set(vid)))
    server.restart()
    run(FakeClient(server))
    assert server.submitted[-1] == vid[0] + "-r2"
    assert run.job("S01T02")["attempts"][0]["submissions"] == 2


def test_gate_failure_retakes_with_a_new_seed(tmp_path):
    run, server = Run(tmp_path, [SHOTS[1]]), FakeServer()
    base = SHOTS[1]["seed"]

    def gate(prompt):  # fails the shot's own seed, passes a retake
        return all(n["inputs"].get("noise_seed", -1) != base for n in prompt.values())

    result = run(FakeClient(server, gate=gate))
    job = run.job("S01T02")
    assert not result.failures and job["selected_attempt"] == 2
    assert [a["seed"] for a in job["attempts"]] == [base, derive_seed(base, 2)]
    assert [a["status"] for a in job["attempts"]] == ["gate_failed", "done"]
    assert run.shot("S01T02")["assets"]["video"]["attempt"] == 2


def test_no_passing_attempt_keeps_the_best_and_fails_the_shot_only(tmp_path):
    run, server = Run(tmp_path, [SHOTS[1], SHOTS[2]]), FakeServer()
    result = run(FakeClient(server, gate=lambda p: False), max_retakes=2)
    assert result.failures["S01T02"]["code"] == "quality_failed"
    assert len(run.job("S01T02")["attempts"]) == 3 and run.shot("S01T02")["assets"]["video"]
    assert run.shot("S02T01")["status"] == "done"
    # a rerun does not retake again; a higher --max-retakes continues where it stopped
    n = len(server.submitted)
    run(FakeClient(server, gate=lambda p: False), max_retakes=2)
    assert len(server.submitted) == n
    run(FakeClient(server, gate=lambda p: True), max_retakes=3)
    assert len(server.submitted) == n + 1 and run.job("S01T02")["selected_attempt"] == 4


def test_a_rejected_prompt_fails_its_shot_and_the_run_goes_on(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()

    def reject(prompt):
        if any(n["class_type"] == "RepeatImageBatch" for n in prompt.values()):
            return {"3": {"errors": [{"type": "value_bigger_than_max", "message": "too big", "details": "amount"}],
                          "class_type": "RepeatImageBatch"}}
        return None

    result = run(FakeClient(server, reject=reject))
    assert set(result.failures) == {"S02T01"} and result.failures["S02T01"]["code"] == "prompt_rejected"
    assert result.failures["S02T01"]["node_errors"][0]["type"] == "value_bigger_than_max"
    assert run.shot("S01T02")["status"] == "done" and run.shot("S02T01")["status"] == "failed"


def test_review_stop_keyframes_then_video_with_verdicts(tmp_path):
    run, server = Run(tmp_path, SHOTS), FakeServer()
    result = run(FakeClient(server), stage="keyframes")
    assert not any("-video-" in p for p in server.submitted)
    approvals = json.loads((run.run_dir / "approvals.json").read_text())
    assert approvals == {"S01T01": "pending", "S01T02": "pending", "S02T01": "pending"}
    assert run.shot("S01T02")["status"] == "awaiting_review"

    result = run(FakeClient(server), stage="video")
    assert sorted(result.pending_review) == ["S01T01", "S01T02", "S02T01"] and result.rendered == 0

    (run.run_dir / "approvals.json").write_text(json.dumps(
        {"S01T01": "approve", "S01T02": {"verdict": "retake", "note": "off model"}, "S02T01": "pending"}))
    kf_seed = run.job("S01T02", "kf-first")["attempts"][0]["seed"]
    result = run(FakeClient(server), stage="video")
    assert result.pending_review == ["S01T02", "S02T01"]
    assert run.shot("S01T01")["status"] == "done" and "video" in run.shot("S01T01")["assets"]
    assert "video" not in run.shot("S01T02")["assets"]
    assert run.job("S01T02", "kf-first")["attempts"][0]["seed"] == derive_seed(kf_seed, 2)
    assert Approvals.load(run.run_dir).entries["S01T02"] == {"verdict": "pending", "note": "off model"}


def test_storyboard_keyframes_are_copied_into_the_run_folder(tmp_path):
    run, server = Run(tmp_path, [SHOTS[0]]), FakeServer()
    run(FakeClient(server))
    hero = run.shot("S01T01")["assets"]["hero"]
    assert hero["path"] == "keyframes/TST_EP007_S01_T01_AKI_hero.png" and hero["source"].endswith("still.png")
    assert (run.run_dir / hero["path"]).read_bytes() == (tmp_path / "sb" / "still.png").read_bytes()


def test_an_output_with_the_wrong_frame_count_fails_the_shot(tmp_path, monkeypatch):
    from tests.unit import driver_fakes

    run, server = Run(tmp_path, [SHOTS[2]]), FakeServer()
    monkeypatch.setattr(driver_fakes, "_frames_of", lambda prompt: 3)
    result = run(FakeClient(server))
    err = result.failures["S02T01"]
    assert err["code"] == "output_missing" and "has 3 frames, expected 24" in err["message"]


def test_dailies_page_links_assets_relatively_and_escapes_text(tmp_path):
    from driver.outputs.dailies import write_dailies

    shots = [dict(SHOTS[1], motion_prompt="<script>alert(1)</script>"), SHOTS[2]]
    run, server = Run(tmp_path, shots), FakeServer()
    run(FakeClient(server), stage="keyframes")
    run(FakeClient(server))
    page = write_dailies(load_storyboard(run.sb_path), run.manifest, Approvals.load(run.run_dir)).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'src="keyframes/TST_EP007_S01_T02_NOCHAR_first.png"' in page
    assert 'src="clips/TST_EP007_S02_T01_NOCHAR_video.mp4"' in page
    assert "temporal" in page and "review <span" in page
    assert str(tmp_path) not in page  # opens from the run folder, wherever it is moved


def test_dailies_page_stays_small_with_long_prompts(tmp_path):
    """A prompt is shown clipped, with a link to the attempt's workflow file, which has it whole."""
    from driver.outputs.dailies import PROMPT_CHARS, write_dailies

    run, server = Run(tmp_path, [dict(SHOTS[1], motion_prompt="walks " * 20_000)]), FakeServer()
    run(FakeClient(server))
    page = write_dailies(load_storyboard(run.sb_path), run.manifest, Approvals.load(run.run_dir)).read_text()
    assert len(page) < 20_000 and "(120,000 characters)" in page and "walks " * (PROMPT_CHARS // 6) in page
    video = run.job("S01T02")["attempts"][0]
    assert f'href="{video["workflow_file"]["path"]}"' in page
    assert "walks " * 20_000 in json.dumps(run.manifest.workflow(video))
    assert len((run.run_dir / "run_manifest.json").read_text()) < 60_000  # the prompt is not in the manifest
