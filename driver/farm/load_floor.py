"""The least model-loading time any schedule of a plan can have (pure): a lower bound,
so a simulated policy can be compared with what is possible, not only with today's.

Every server starts with nothing loaded, and ComfyUI keeps no model across a restart, so a
server that runs any job needing a file reads that file from storage at least once (with
either cache). Files needed by exactly the same jobs form a group (the WAN experts, their
text encoder and VAE: every WAN clip needs them all). A server that runs any job of a
group spends at least the group's load time ``L`` reading it, so within a wall time ``W``
it samples at most ``W - L`` seconds of that group's jobs; the group's ``T`` seconds of
sampling then need at least ``ceil(T / (W - L))`` servers, each paying ``L``. The sum over
the groups is the bound. It ignores dependencies, the other groups' loads on the same
server and RAM copies, all of which only add time, so no schedule finishing within ``W``
loads less (``inf``: no schedule on that many servers finishes within ``W``). Jobs whose
model set is unknown (``None``) add nothing."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .affinity import LoadCosts, file_gb


def file_groups(work: Iterable[Any], costs: LoadCosts) -> list[tuple[float, float, int]]:
    """(load seconds, sampling seconds of the jobs needing it, number of those jobs) per
    group of files needed by the same jobs (``work``: items with ``key``, ``duration``,
    ``models``). A loader naming no file (a LoRA stack applier) counts as one file, keyed by
    its signature, of the size :meth:`LoadCosts.gb` gives it."""
    needed_by: dict[str, set] = defaultdict(set)
    gb: dict[str, float] = {}
    duration: dict[Any, float] = {}
    for job in work:
        duration[job.key] = job.duration
        for ld in job.models or ():
            for name in ld.files or (ld.signature,):
                needed_by[name].add(job.key)
                gb[name] = file_gb(name, ld.kind, costs.sizes) if ld.files else costs.gb(ld)
    groups: dict[frozenset, float] = defaultdict(float)
    for name, jobs in needed_by.items():
        groups[frozenset(jobs)] += gb[name]
    assert costs.gbps is not None
    return [(g / costs.gbps, sum(duration[k] for k in jobs), len(jobs)) for jobs, g in groups.items()]


def least_load_s(work: Iterable[Any], servers: int, costs: LoadCosts, wall_s: float) -> float:
    """Seconds of loading below which no schedule of ``work`` on ``servers`` servers that
    finishes within ``wall_s`` can go (``inf`` if none finishes within it)."""
    total = 0.0
    for load_s, sampling_s, n_jobs in file_groups(work, costs):
        if wall_s <= load_s:
            return math.inf
        need = max(1, math.ceil(sampling_s / (wall_s - load_s) - 1e-9))
        if need > min(servers, n_jobs):
            return math.inf
        total += need * load_s
    return total
