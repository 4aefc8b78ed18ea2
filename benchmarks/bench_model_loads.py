"""GPU time with model loads: today's job order vs the dispatcher's model affinity vs the
floor with no loads at all (a script, not a timed test).

    python -m benchmarks.bench_model_loads [--shots 60] [--servers 1 4 16] [--json FILE]

The workload is storyboard_ep_001's eight-shot mix (held frames, standard and split FLF,
generated and supplied keyframes, a keyframed and a continuation long shot, its
characters) cycled to ``--shots`` shots (scenes renumbered), planned and compiled by the
driver; every job's model set is read from
its compiled workflow and its sampling time is the plan's estimate (config
``gpu_table.rtx4090``). Each case is one run of the farm simulator
(``driver.farm.simulate.schedule``: the pool's own ``Dispatcher``, its critical-path
priorities and, for the new policy, its affinity with ``scheduling.max_delay_s`` of the
example config) with load costs from ``driver.farm.affinity.LoadCosts``: local NVMe or a
RunPod network volume, ComfyUI's default cache or an LRU cache sized to the pod's RAM
(62 GB). Today's policy: one server renders shot after shot (the single-server
executor); several servers take jobs by critical path. GPU time counts sampling and
loading (what a pod bills while it works); the floor is pure sampling. "Least load" is
:func:`driver.farm.load_floor.least_load_s`: no schedule whose wall time is within 5 % of
today's can load less, so "cut possible" is the most any policy could save there.
Simulated seconds: no GPU was used and the throughputs are the sourced defaults, not
measurements."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from driver.config import load_config
from driver.farm.affinity import LoadCosts
from driver.farm.estimate import _work, today_policy
from driver.farm.load_floor import least_load_s
from driver.farm.simulate import schedule
from driver.render.compile import Compiler
from driver.render.models import model_set
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard

EXAMPLE = REPO_ROOT / "storyboards" / "storyboard_ep_001.json"
WALL_ALLOWANCE = 1.05  # the bound: wall time no more than 5 % worse than today's


def episode(shots: int, tmp: Path):
    """The example's shots cycled to ``shots`` shots (scenes renumbered), planned and compiled."""
    doc = json.loads(EXAMPLE.read_text())
    base = doc["shots"]
    doc["shots"] = [{**base[i % len(base)], "scene": base[i % len(base)]["scene"] + 10 * (i // len(base))}
                    for i in range(shots)]
    shutil.copytree(EXAMPLE.parent / "demo", tmp / "demo")
    (tmp / "sb.json").write_text(json.dumps(doc))
    sb, cfg = load_storyboard(tmp / "sb.json"), load_config(REPO_ROOT / "configs" / "project.example.yaml")
    plan = make_plan(sb, cfg)
    compiler = Compiler(sb, cfg, "bench")
    return plan, {j.id: model_set(compiler.compile(j).prompt) for j in plan.jobs}, cfg


def run(shots: int, servers: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        plan, models, cfg = episode(shots, Path(tmp))
    work = _work(plan.jobs, models)
    slack = cfg["scheduling"]["max_delay_s"]
    rows = []
    for n in servers:
        floor = schedule(work, n, policy="critical_path", overhead_s=1.0)
        for storage in ("nvme", "network_volume"):
            for cache in ("default", "lru"):
                costs = LoadCosts(storage=storage, cache=cache, ram_gb=62.0, vram_gb=24.0, slack_s=slack)
                today = schedule(work, n, policy=today_policy(n), overhead_s=1.0, costs=costs)
                new = schedule(work, n, policy="critical_path", overhead_s=1.0, costs=costs, affinity=True)
                least = least_load_s(work, n, costs, WALL_ALLOWANCE * today.makespan_s)
                rows.append({"servers": n, "storage": storage, "cache": cache, "least_load_h": least / 3600,
                             "sampling_h": floor.extra["sampling_s"] / 3600, "floor_wall_s": floor.makespan_s,
                             **{f"{k}_{f}": v for k, r in (("today", today), ("new", new)) for f, v in (
                                 ("gpu_h", (r.extra["sampling_s"] + r.extra["load_s"]) / 3600),
                                 ("load_h", r.extra["load_s"] / 3600), ("wall_s", r.makespan_s),
                                 ("loads", sum(r.extra["loads_per_server"])))}})
    return {"shots": len({j.shot for j in plan.jobs}), "jobs": len(plan.jobs), "slack_s": slack, "rows": rows}


def table(res: dict) -> str:
    out = [f"{res['shots']} shots, {res['jobs']} jobs; affinity bound (max_delay_s) {res['slack_s']:.0f} s; "
           "GPU-h = sampling + loading; wall in minutes; loads = loader nodes run (a LoRA-only change counts one)", "",
           "| servers | storage | cache | floor GPU-h | floor wall | today GPU-h | today wall | today loads | "
           "new GPU-h | new wall | new loads | load above floor | wall vs today | least load h | cut possible |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        cut = 1 - r["new_load_h"] / r["today_load_h"] if r["today_load_h"] else 0.0
        possible = 1 - r["least_load_h"] / r["today_load_h"] if r["today_load_h"] else 0.0
        out.append(f"| {r['servers']} | {r['storage']} | {r['cache']} | {r['sampling_h']:.2f} | "
                   f"{r['floor_wall_s'] / 60:.1f} | {r['today_gpu_h']:.2f} | {r['today_wall_s'] / 60:.1f} | "
                   f"{r['today_loads']} | {r['new_gpu_h']:.2f} | {r['new_wall_s'] / 60:.1f} | {r['new_loads']} | "
                   f"{-cut:+.0%} | {r['new_wall_s'] / r['today_wall_s'] - 1:+.1%} | {r['least_load_h']:.2f} | "
                   f"{-possible:+.0%} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=60, help="shots of the episode (the example's cycled)")
    ap.add_argument("--servers", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if not 1 <= args.shots <= 80:
        ap.error(f"--shots must be 1-80 (scenes are renumbered by tens up to the storyboard's 99), got {args.shots}")
    res = run(args.shots, args.servers)
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
