"""One rented pod as the fleet records it (journal, summary, cost) and the ComfyUI URL of a
running pod (RunPod's proxy, or a public TCP port)."""

from __future__ import annotations

from dataclasses import dataclass

PROXY_TEMPLATE = "https://{pod_id}-8188.proxy.runpod.net"
TCP_TEMPLATE = "http://{ip}:{port}"
COMFY_PORT = 8188
GONE = {"EXITED", "TERMINATED", "DEAD"}


@dataclass
class PodRecord:
    id: str
    name: str
    created_at: str
    url: str | None = None
    cost_per_hr: float = 0.0
    gpu: str | None = None
    started: float = 0.0          # monotonic, creation
    ready_s: float | None = None  # boot time
    stopped: float | None = None  # monotonic
    state: str = "created"        # created | ready | stopped | not_ready (stopped) | stop_failed

    def hours(self, at: float) -> float:
        return max(0.0, ((self.stopped or at) - self.started) / 3600.0)


def pod_url(pod: dict, template: str) -> str | None:
    """The ComfyUI URL of a running pod, or None while its ports are not mapped."""
    ports = ((pod.get("runtime") or {}).get("ports")) or []
    if "{ip}" in template or "{port}" in template:
        for p in ports:
            if p.get("privatePort") == COMFY_PORT and p.get("isIpPublic") and p.get("publicPort"):
                return template.format(pod_id=pod["id"], ip=p["ip"], port=p["publicPort"])
        return None
    return template.format(pod_id=pod["id"]) if ports else None
