"""GPU time and cost of a plan per backend, for ``--dry-run``.

The plan's per-job GPU seconds come from the config's GPU table (the driver's plan).
Wall time is the dispatcher's own schedule of those jobs (dependencies, critical-path
priorities) on the backend's slots (:func:`driver.farm.simulate.schedule`). Then:

* **servers** (your own ComfyUI servers): GPU time = the jobs; no rental cost.
* **pods**: every pod is billed from creation to stop: boot + the schedule + download
  margin, at the hourly price (``costPerHr`` of a running pod is the authority; the
  table below is a planning figure).
* **serverless**: each job is billed for its run plus the idle timeout, plus one cold
  start (container + model load) per worker.

Prices (USD): serverless flex per second from RunPod's docs (2026-06); pod prices per
hour are third-party transcriptions of runpod.io/pricing, unverified: read the live ones
with ``runpod.get_gpu`` before trusting a budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .affinity import LoadCosts
from .simulate import SimJob, schedule

SERVERLESS_USD_PER_S = {  # RunPod docs, flex workers
    "ADA_24": 0.00031, "ADA_48_PRO": 0.00053, "AMPERE_80": 0.00076, "ADA_80_PRO": 0.00116, "HOPPER_141": 0.00155,
}
POD_USD_PER_HR = {  # community / secure, third-party transcriptions (unverified)
    "NVIDIA GeForce RTX 4090": (0.34, None), "NVIDIA L40S": (0.79, None),
    "NVIDIA A100 80GB PCIe": (1.19, 1.59), "NVIDIA A100-SXM4-80GB": (1.39, 1.79),
    "NVIDIA H100 PCIe": (1.99, 2.89), "NVIDIA H100 80GB HBM3": (2.69, 3.49), "NVIDIA H200": (None, 4.59),
}
POD_BOOT_S = 180.0          # baked image + network volume (runpod.md §5.3: 1-5 min)
SERVERLESS_COLD_S = 45.0    # first job of a worker: container + model load (worker-comfyui #90)
SERVERLESS_IDLE_S = 5.0     # endpoint default idle timeout, billed after each job
DOWNLOAD_MARGIN_S = 60.0


@dataclass
class Estimate:
    backend: str
    slots: int
    wall_s: float
    gpu_s: float           # billed (pods, serverless) or used (servers) GPU seconds
    cost_usd: float | None
    note: str = ""

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _work(jobs, models: dict | None = None) -> list[SimJob]:
    """Plan jobs (``id``, ``shot``, ``estimate_s``, ``depends_on``) as simulation jobs, in
    dependency order (``models``: job id -> its model set)."""
    jobs = list(jobs)
    shots = {sid: i for i, sid in enumerate(dict.fromkeys(j.shot for j in jobs))}
    return [SimJob(j.id, shots[j.shot], float(j.estimate_s), float(j.estimate_s), tuple(j.depends_on),
                   (models or {}).get(j.id)) for j in jobs]


@dataclass
class LoadRow:
    """One policy's schedule of a plan with model loads."""

    policy: str
    servers: int
    wall_s: float
    sampling_s: float
    load_s: float
    loads_per_server: list[int]

    @property
    def gpu_s(self) -> float:
        return self.sampling_s + self.load_s


def today_policy(n_servers: int) -> str:
    """What runs today: one server renders shot after shot; a pool by critical path."""
    return "storyboard" if n_servers == 1 else "critical_path"


def with_loads(jobs, models: dict, n_servers: int, costs: LoadCosts, overhead_s: float = 1.0) -> list[LoadRow]:
    """Today's policy, the model-affinity one and the floor (no loads at all), each
    scheduled by the dispatcher on ``n_servers`` servers."""
    work = _work(jobs, models)
    if not work:
        return []
    rows = []
    for label, policy, c, aff in (("today", today_policy(n_servers), costs, False),
                                  ("affinity", "critical_path", costs, True), ("floor (no loads)", "critical_path",
                                                                               None, False)):
        r = schedule(work, n_servers, policy=policy, overhead_s=overhead_s, costs=c, affinity=aff)
        rows.append(LoadRow(label, n_servers, r.makespan_s, r.extra["sampling_s"], r.extra["load_s"],
                            r.extra["loads_per_server"]))
    return rows


def format_loads(rows: list[LoadRow], costs: LoadCosts) -> str:
    lines = [f"model loads from {costs.storage} at {costs.gbps:.2f} GB/s, ComfyUI cache {costs.cache}:",
             f"{'policy':<18} {'servers':>7} {'wall':>9} {'sampling':>9} {'loading':>9} {'GPU time':>9}  "
             "loads per server"]
    for r in rows:
        lines.append(f"{r.policy:<18} {r.servers:>7} {_hms(r.wall_s):>9} {_hms(r.sampling_s):>9} {_hms(r.load_s):>9} "
                     f"{_hms(r.gpu_s):>9}  {r.loads_per_server}")
    return "\n".join(lines)


def makespan(jobs, slots: int, overhead_s: float = 1.0) -> float:
    work = _work(jobs)
    if not work:
        return 0.0
    return schedule(work, max(1, slots), overhead_s=overhead_s).makespan_s


def servers(jobs, n: int) -> Estimate:
    total = sum(j.estimate_s for j in jobs)
    return Estimate("servers", n, makespan(jobs, n), total, None, "your own servers: no rental cost")


def pods(jobs, n: int, gpu_type: str, *, cloud: str = "SECURE", usd_per_hr: float | None = None,
         boot_s: float = POD_BOOT_S) -> Estimate:
    wall = boot_s + makespan(jobs, n) + DOWNLOAD_MARGIN_S
    price, basis = usd_per_hr, "given price"
    if price is None:
        community, secure = POD_USD_PER_HR.get(gpu_type, (None, None))
        wanted = secure if cloud == "SECURE" else community
        price = wanted or community or secure
        basis = "table price" if wanted else "community price (no secure figure)" if community else "secure price"
    billed = n * wall
    note = (f"{n} pod(s) x (boot {boot_s:.0f} s + schedule + {DOWNLOAD_MARGIN_S:.0f} s); "
            + (basis if price is not None else f"no price known for {gpu_type!r}"))
    return Estimate(f"pods ({gpu_type}, {cloud.lower()})", n, wall, billed,
                    None if price is None else billed / 3600.0 * price, note)


def serverless(jobs, workers: int, pool: str = "ADA_24", *, cold_s: float = SERVERLESS_COLD_S,
               idle_s: float = SERVERLESS_IDLE_S) -> Estimate:
    jobs = list(jobs)
    used = min(workers, max(1, len(jobs)))
    billed = sum(j.estimate_s + idle_s for j in jobs) + used * cold_s
    price = SERVERLESS_USD_PER_S.get(pool)
    wall = cold_s + makespan(jobs, workers)
    return Estimate(f"serverless ({pool})", workers, wall, billed, None if price is None else billed * price,
                    f"per job: run + {idle_s:.0f} s idle; one {cold_s:.0f} s cold start per worker")


def table(jobs, *, n_servers: int = 1, n_pods: int | None = None, gpu_type: str = "NVIDIA GeForce RTX 4090",
          workers: int = 4, serverless_pool: str = "ADA_24") -> list[Estimate]:
    """The three backends side by side (``n_pods`` defaults to ``n_servers``)."""
    jobs = list(jobs)
    return [servers(jobs, n_servers), pods(jobs, n_pods or n_servers, gpu_type),
            serverless(jobs, workers, serverless_pool)]


def format_table(rows: list[Estimate]) -> str:
    lines = [f"{'backend':<44} {'slots':>5} {'wall':>9} {'GPU time':>9} {'cost':>9}"]
    for r in rows:
        cost = "-" if r.cost_usd is None else f"${r.cost_usd:,.2f}"
        lines.append(f"{r.backend:<44} {r.slots:>5} {_hms(r.wall_s):>9} {_hms(r.gpu_s):>9} {cost:>9}  {r.note}")
    return "\n".join(lines)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
