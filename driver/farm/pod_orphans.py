"""Pods a crashed run left behind, found and stopped by their name prefix (``farm status``,
``farm down``)."""

from __future__ import annotations

import time

from driver.files import now

from .errors import FarmError
from .runpod_api import PodSpec, RunPodApi
from .runpod_pods import GONE, PodFleet, PodRecord


def find_pods(api: RunPodApi, prefix: str) -> list[dict]:
    """Pods whose name starts with ``prefix`` (what ``farm status`` lists)."""
    return sorted((p for p in api.pods() if str(p.get("name", "")).startswith(prefix)), key=lambda p: p["name"])


def stop_pods(api: RunPodApi, prefix: str, *, terminate: bool = False) -> list[str]:
    """Stop (or terminate) every pod named with ``prefix``; returns their ids."""
    if not prefix or len(prefix) < 3:
        raise FarmError("give a run prefix of at least 3 characters, so only this project's pods are touched")
    fleet = PodFleet(api, prefix=prefix, spec=PodSpec(), terminate=terminate, poll_s=1.0)
    for p in find_pods(api, prefix):
        if p.get("desiredStatus") in GONE and not terminate:
            continue
        fleet.pods[p["id"]] = PodRecord(p["id"], p["name"], now(), started=time.monotonic())  # cost: not ours to sum
    fleet.down()
    return list(fleet.pods)
