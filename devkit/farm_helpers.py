"""Runs a storyboard on a farm backend with the wiring of ``driver.runner.run``:
storyboard -> plan -> compile -> backend (``driver.backends.open_executor``: pool, pods
or endpoint, preflight per member) -> Scheduler -> manifest, but it returns the
scheduler's result, lets errors propagate and skips the assembly. Also small checks
shared by the farm integration tests."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import requests

from driver import runner
from driver.backends import Target, open_executor
from driver.config import load_config
from driver.farm.backend import FarmOptions
from driver.files import sha256_file
from driver.outputs.approvals import Approvals
from driver.outputs.manifest import Manifest
from driver.progress import Reporter
from driver.render.compile import Compiler
from driver.render.scheduler import Scheduler
from driver.story.plan import make_plan, shot_planner
from driver.story.storyboard import REPO_ROOT, load_storyboard

DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"


def farm_run(run_dir: Path, fo: FarmOptions, *, storyboard: Path = DEMO, config: Path | None = None,
             only: list[str] | None = None, stage: str = "all", on_backend=None):
    sb, cfg = load_storyboard(storyboard), load_config(config)
    manifest = Manifest.open(run_dir, run_id=runner.run_id_for(sb, run_dir), storyboard=sb, config=cfg,
                             repo=REPO_ROOT)
    manifest.save()
    plan = make_plan(sb, cfg, only=only)
    compiler = Compiler(sb, cfg, manifest.run_id)
    approvals = Approvals.load(run_dir)
    reporter = Reporter()
    with contextlib.ExitStack() as stack:
        target = Target(cfg, run_dir, manifest.run_id, plan, compiler,
                        compiled=lambda: runner.compile_all(plan, compiler, stage))
        executor = open_executor(fo, target, stack, reporter)
        if on_backend is not None:
            on_backend(executor)
        scheduler = Scheduler(
            storyboard=sb, compiler=compiler, manifest=manifest, executor=executor, approvals=approvals,
            jobs_for=shot_planner(sb, cfg),
            reporter=reporter, stage=stage, max_retakes=cfg["retakes"]["max_retakes"])
        try:
            result = scheduler.run([s for s in sb.shots if not only or s.id in only])
        finally:
            approvals.save()
            manifest.save()
    return result, json.loads((run_dir / "run_manifest.json").read_text())


def attempts(manifest: dict):
    for sid, rec in manifest["shots"].items():
        for jid, job in rec["jobs"].items():
            for att in job["attempts"]:
                yield sid, jid, job, att


def assert_complete_and_verified(manifest: dict, run_dir: Path, shots: list[str]) -> None:
    """Every shot done; every job done exactly once (one selected attempt, status done);
    every recorded file on disk with its recorded sha256."""
    for sid in shots:
        rec = manifest["shots"][sid]
        assert rec["status"] == "done", (sid, rec.get("error"))
        for jid, job in rec["jobs"].items():
            assert job["status"] == "done", (jid, job)
            done = [a for a in job["attempts"] if a["status"] == "done"]
            assert len(done) == 1 and job["selected_attempt"] == done[0]["attempt"], (jid, job["attempts"])
            for f in done[0]["outputs"]:
                assert sha256_file(run_dir / f["path"]) == f["sha256"], f
        for role, f in rec["assets"].items():
            if isinstance(f, dict) and "path" in f:
                assert sha256_file(run_dir / f["path"]) == f["sha256"], (sid, role)


def history_size(url: str) -> int:
    return len(requests.get(f"{url}/history", timeout=10).json())


def _busy(url: str) -> bool:
    try:
        return bool(requests.get(f"{url}/queue", timeout=5).json().get("queue_running"))
    except requests.RequestException:
        return False


@contextlib.contextmanager
def kill_first_busy(victims, poll_s: float = 0.02) -> Iterator[list]:
    """While the block runs, kill the first of ``victims`` (harness server handles) seen
    running a prompt: a server dying mid-job. Yields the list the killed one is put in."""
    killed: list = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not killed:
            for handle in victims:
                if _busy(handle.url):
                    handle.kill()
                    killed.append(handle)
                    return
            stop.wait(poll_s)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join(5)
