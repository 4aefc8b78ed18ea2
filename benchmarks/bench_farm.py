"""Render-farm benchmarks (a script, not a timed test).

    .venv/bin/python -m benchmarks.bench_farm sim         [--servers 100 --jobs 10000 --seeds 3]
    .venv/bin/python -m benchmarks.bench_farm pool        [--servers 16 --jobs 4000]
    .venv/bin/python -m benchmarks.bench_farm throughput  [--jobs 20 --repeats 1]
    .venv/bin/python -m benchmarks.bench_farm all

* ``sim``: the pool's dispatcher (``driver.farm.dispatch``) in a discrete-event
  simulation: 100 servers, 10,000 jobs of random durations (keyframes 5-40 s, videos
  log-normal ~120 s, each video after its keyframes), 0.5 s driver round trip per job,
  without and with server failures. Reports the dispatcher's CPU cost per job and the
  servers' utilisation (target >= 95 %) per priority policy, against the lower bound
  (total work / servers, or the longest chain).
* ``pool``: the real threaded pool (leases, health bookkeeping, the scheduler lock) with
  instant fake jobs: the driver-side cost per dispatched job in real threads.
* ``throughput``: the same 20 equal jobs (held-frame pushes of a shipped keyframe, 48
  frames at 432x768, each with its own zoom so ComfyUI's cache cannot skip one) on 1 and
  then 2 real CPU ComfyUI servers, each server pinned with ``taskset`` to its own core
  and limited to one thread (OMP/MKL/OpenBLAS = 1), through the farm's pool and the
  driver's scheduler. Reports jobs per minute, the ratio (target >= 1.8) and the
  driver's own CPU use (its process: all threads, user + system). Needs ComfyUI
  (``COMFYUI_DIR``, default ``~/ComfyUI``) and at least 2 CPU cores.

``--json FILE`` also writes every figure as JSON."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]

from driver.farm.simulate import POLICIES, simulate

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS")}


# ---------------------------------------------------------------------- simulation
def bench_sim(servers: int, jobs: int, seeds: int) -> list[dict]:
    rows = []
    print(f"\nsimulation: {servers} servers, {jobs} jobs, 0.5 s driver round trip per job, {seeds} seed(s)")
    print(f"{'policy':<14} {'failures':>8} {'makespan':>9} {'bound':>8} {'util':>7} {'disp us/job':>11} "
          f"{'loop us/job':>11} {'jobs/server':>12}")
    for policy in POLICIES:
        for failures in (0, 10):
            runs = [simulate(servers, jobs, seed=s, policy=policy, failures=failures) for s in range(seeds)]
            row = {"policy": policy, "failures": failures,
                   "makespan_s": sum(r.makespan_s for r in runs) / seeds,
                   "lower_bound_s": sum(r.lower_bound_s for r in runs) / seeds,
                   "utilisation": min(r.utilisation for r in runs),
                   "dispatch_us_per_job": max(r.dispatch_us_per_job for r in runs),
                   "loop_us_per_job": max(r.loop_us_per_job for r in runs),
                   "jobs_per_server": [min(r.min_per_server for r in runs), max(r.max_per_server for r in runs)],
                   "resubmitted": sum(r.resubmitted for r in runs)}
            rows.append(row)
            print(f"{policy:<14} {failures:>8} {row['makespan_s']:>8.0f}s {row['lower_bound_s']:>7.0f}s "
                  f"{100 * row['utilisation']:>6.2f}% {row['dispatch_us_per_job']:>11.1f} "
                  f"{row['loop_us_per_job']:>11.1f} {row['jobs_per_server'][0]:>5}-{row['jobs_per_server'][1]:<6}")
    print("util: worst seed; us/job: worst seed; failures: servers killed at random, job confirmed lost 30 s later, "
          "server back after 300 s")
    return rows


# ---------------------------------------------------------------------- threaded pool
class _InstantExecutor:
    """A member executor whose jobs finish at once (only the driver's side is measured)."""

    def __init__(self, name):
        self.client = SimpleNamespace(client_id=name)

    def input_names(self, files):
        return {r: str(p) for r, p in files.items()}

    def upload(self, files):
        return self.input_names(files)

    def run_attempt(self, compiled, dest_for, *, in_flight=False, resubmit=None):
        return None


def bench_pool(servers: int, jobs: int) -> dict:
    from driver.farm.pool import Member, ServerPool
    from driver.farm.pool_executor import PoolExecutor

    members = [Member(f"s{i}", _InstantExecutor(f"s{i}"), probe=lambda: None) for i in range(servers)]
    pool = ServerPool(members)
    executor = PoolExecutor(pool)
    compiled = [SimpleNamespace(job=SimpleNamespace(id=f"j{i}", shot=f"S{i}"), prompt_id=f"p{i}") for i in range(jobs)]

    def one(c):
        with executor.slot(c.job):
            executor.run_attempt(c, None)

    cpu0, t0 = _cpu(), time.perf_counter()
    executor.map_shots(compiled, one)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    executor.close()
    done = sum(m.jobs for m in members)
    row = {"servers": servers, "jobs": done, "threads": pool.capacity + 2, "wall_us_per_job": wall / done * 1e6,
           "cpu_us_per_job": cpu / done * 1e6}
    print(f"\nthreaded pool: {servers} servers, {done} instant jobs on {row['threads']} threads: "
          f"{row['wall_us_per_job']:.0f} us wall and {row['cpu_us_per_job']:.0f} us CPU per job "
          "(lease, release, scheduler lock; no network)")
    return row


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------- 1 vs 2 servers
def _storyboard(folder: Path, n: int, tag: str) -> Path:
    src = REPO / "storyboards" / "demo"
    (folder / "keyframes").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "keyframes" / "city_dusk.png", folder / "keyframes" / "city_dusk.png")
    doc = json.loads((src / "demo.json").read_text())
    base = doc["shots"][0]
    doc["shots"] = [{**base, "scene": 1 + i // 20, "take": 1 + i % 20, "seed": 1000 + i,
                     "push": {**base["push"], "zoom_end": round(1.15 + 0.001 * i + (0.0005 if tag == "b" else 0), 5)}}
                    for i in range(n)]
    path = folder / f"bench_{tag}.json"
    path.write_text(json.dumps(doc))
    return path


SPIN = "import time; t = time.perf_counter(); sum(i * i for i in range(15_000_000)); print(time.perf_counter() - t)"


def machine_ceiling() -> dict:
    """What 2 pinned single-thread CPU processes get on this machine right now versus
    one: a pure-Python loop alone on core 0, then one on each core at once. Other load on
    the machine (or vCPUs sharing a physical core) shows up here, not in the driver."""
    def spin(cores):
        procs = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", SPIN], stdout=subprocess.PIPE,
                                  text=True) for c in cores]
        return [float(p.communicate()[0]) for p in procs]
    alone = spin([0])[0]
    pair = spin([0, 1])
    return {"alone_s": alone, "pair_s": pair, "ceiling_ratio": 2 * alone / max(pair)}


def _pin(pid: int, core: int) -> None:
    subprocess.run(["taskset", "-a", "-c", "-p", str(core), str(pid)], check=True, stdout=subprocess.DEVNULL)


def _farm_run(sb_path: Path, run_dir: Path, urls: list[str]) -> dict:
    from devkit.farm_helpers import farm_run
    from driver.farm.backend import FarmOptions

    cpu0, t0 = _cpu(), time.perf_counter()
    result, manifest = farm_run(run_dir, FarmOptions(servers=urls, health_interval_s=2.0), storyboard=sb_path)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if result.failures or result.rendered != len(manifest["shots"]):
        raise RuntimeError(f"benchmark run failed: {result.failures}")
    execs = [a["timings"]["execution_s"] for rec in manifest["shots"].values() for j in rec["jobs"].values()
             for a in j["attempts"] if a["status"] == "done"]
    return {"servers": len(urls), "jobs": result.rendered, "wall_s": wall, "jobs_per_min": 60 * result.rendered / wall,
            "server_exec_s_median": sorted(execs)[len(execs) // 2],
            "servers_busy": sum(execs) / (len(urls) * wall),  # share of the wall time the servers executed
            "load_avg_1min_after": os.getloadavg()[0], "driver_cpu_s": cpu,
            "driver_cpu_pct_of_one_core": 100 * cpu / wall, "driver_cpu_ms_per_job": 1000 * cpu / result.rendered}


def bench_throughput(jobs: int, repeats: int) -> dict:
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        print("\nthroughput: skipped (needs 2 CPU cores and taskset)")
        return {}
    from devkit.harness.comfy import find_comfyui, start_server

    install, reason = find_comfyui()
    if install is None:
        print(f"\nthroughput: skipped ({reason})")
        return {}
    os.environ.update(ONE_THREAD)  # inherited by the servers started below
    tmp = Path(tempfile.mkdtemp(prefix="bench_farm_"))
    servers = []
    try:
        for core in (0, 1):
            handle = start_server(tmp / f"server{core}", install=install, with_test_nodes=False)
            _pin(handle.proc.pid, core)
            servers.append(handle)
        urls = [s.url for s in servers]
        warm = _storyboard(tmp / "warm", 2, "w")
        _farm_run(warm, tmp / "warm_run", urls)  # imports, first-run caches on both servers
        runs, ceilings = [], []
        for r in range(repeats):
            ceilings.append(machine_ceiling())
            for n in (1, 2):
                sb = _storyboard(tmp / f"sb{r}{n}", jobs, "a" if n == 1 else "b")
                runs.append(_farm_run(sb, tmp / f"run{r}{n}", urls[:n]))
                print(f"  {n} server(s): {runs[-1]['jobs']} jobs in {runs[-1]['wall_s']:.1f} s")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    one = [x for x in runs if x["servers"] == 1]
    two = [x for x in runs if x["servers"] == 2]
    ratio = (sum(x["jobs_per_min"] for x in two) / len(two)) / (sum(x["jobs_per_min"] for x in one) / len(one))
    print(f"\nthroughput: {jobs} equal jobs, each server taskset-pinned to its own core, 1 thread")
    print(f"{'servers':>7} {'wall':>8} {'jobs/min':>9} {'exec/job':>9} {'busy':>6} {'load':>5} {'driver CPU':>11} "
          f"{'% of a core':>12} {'ms/job':>7}")
    for x in runs:
        print(f"{x['servers']:>7} {x['wall_s']:>7.1f}s {x['jobs_per_min']:>9.1f} {x['server_exec_s_median']:>8.2f}s "
              f"{100 * x['servers_busy']:>5.1f}% {x['load_avg_1min_after']:>5.1f} {x['driver_cpu_s']:>10.2f}s "
              f"{x['driver_cpu_pct_of_one_core']:>11.1f}% {x['driver_cpu_ms_per_job']:>7.0f}")
    busy = {n: sum(x["servers_busy"] for x in runs if x["servers"] == n) / repeats for n in (1, 2)}
    execs = {n: sum(x["server_exec_s_median"] for x in runs if x["servers"] == n) / repeats for n in (1, 2)}
    print(f"ratio = 2 x busy ratio ({busy[2] / busy[1]:.3f}: the driver's dispatch) x exec-time ratio "
          f"({execs[1] / execs[2]:.3f}: the machine, each job's own execution time on 2 busy cores vs 1); "
          f"on cores that do not slow each other down: {2 * busy[2] / busy[1]:.2f}")
    ceiling = sum(c["ceiling_ratio"] for c in ceilings) / len(ceilings)
    loops = ", ".join(f"alone {c['alone_s']:.2f} s, pair {max(c['pair_s']):.2f} s" for c in ceilings)
    print(f"machine ceiling now: 2 pinned CPU loops give {ceiling:.2f}x one loop ({loops})")
    print(f"throughput ratio 2 vs 1 servers: {ratio:.2f} (target >= 1.8); exec/job = the server's own execution "
          "time (history), busy = sum(exec) / (servers x wall), load = 1-min load average of the machine after the run")
    return {"runs": runs, "ratio": ratio, "busy_ratio": busy[2] / busy[1], "exec_ratio": execs[1] / execs[2],
            "ratio_if_cores_independent": 2 * busy[2] / busy[1], "machine_ceiling": ceilings,
            "load_avg_after": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("sim", "pool", "throughput", "all"))
    p.add_argument("--servers", type=int, default=100)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    out = {"load_avg_before": os.getloadavg(), "cpus": os.cpu_count()}
    if a.what in ("sim", "all"):
        out["sim"] = bench_sim(a.servers, a.jobs or 10_000, a.seeds)
    if a.what in ("pool", "all"):
        out["pool"] = bench_pool(min(a.servers, 16), a.jobs or 4000 if a.what == "pool" else 4000)
    if a.what in ("throughput", "all"):
        out["throughput"] = bench_throughput(a.jobs or 20 if a.what == "throughput" else 20, a.repeats)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
