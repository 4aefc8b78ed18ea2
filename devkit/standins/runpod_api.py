"""Stand-in of RunPod's GraphQL API (``POST /graphql``) for what the runpod SDK 1.12 pod
functions send (read in the SDK source: ``runpod/api/queries/pods.py``,
``mutations/pods.py``, ``queries/gpus.py``): ``gpuTypes``, ``podFindAndDeployOnDemand``,
``pod``, ``myself { pods }``, ``podStop``, ``podTerminate``. Responses follow
runpod.md §1.2: a created pod is ``RUNNING`` with ``runtime: null`` until it "boots",
then its port 8188 is mapped (``isIpPublic``, ``publicPort``) to a real local ComfyUI
given in ``backends`` (one per pod, in creation order; a pod without one never gets
ports, i.e. never becomes ready). A wrong key gets HTTP 401; no capacity left gets the
GraphQL error RunPod sends."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field

from devkit.standins.http import JsonServer

NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")
GPUS = {"NVIDIA GeForce RTX 4090": ("RTX 4090", 24, 0.69), "NVIDIA L40S": ("L40S", 48, 0.86)}


@dataclass
class StandInPod:
    id: str
    name: str
    image: str
    gpu: str
    cost_per_hr: float
    backend: tuple[str, int] | None  # (ip, port) of its ComfyUI
    boot_polls: int
    status: str = "RUNNING"
    polls: int = 0
    env: list = field(default_factory=list)

    def as_dict(self) -> dict:
        booted = self.status == "RUNNING" and self.backend is not None and self.polls > self.boot_polls
        runtime = {"ports": [{"ip": self.backend[0], "isIpPublic": True, "privatePort": 8188,
                              "publicPort": self.backend[1], "type": "tcp"}]} if booted else None
        return {"id": self.id, "containerDiskInGb": 50, "costPerHr": self.cost_per_hr, "desiredStatus": self.status,
                "dockerArgs": "", "dockerId": None, "env": self.env, "gpuCount": 1, "imageName": self.image,
                "lastStatusChange": "", "machineId": "m-1", "memoryInGb": 62, "name": self.name,
                "podType": "RESERVED", "port": None, "ports": "8188/tcp", "uptimeSeconds": self.polls,
                "vcpuCount": 8, "volumeInGb": 0, "volumeMountPath": "/workspace", "runtime": runtime,
                "machine": {"gpuDisplayName": GPUS.get(self.gpu, (self.gpu,))[0]}}


class RunPodApiStandIn(JsonServer):
    def __init__(self, *, api_key: str, backends: list[tuple[str, int]] = (), capacity: int = 99,
                 boot_polls: int = 1, cost_per_hr: float | None = None, echo_key_in_errors: bool = False):
        super().__init__()
        self.api_key, self.capacity, self.boot_polls = api_key, capacity, boot_polls
        self.backends = list(backends)
        self.cost_per_hr, self.echo_key_in_errors = cost_per_hr, echo_key_in_errors
        self.volumes = ["vol-models"]
        self.pods: dict[str, StandInPod] = {}
        self.queries: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.route("POST", r"/graphql", self._graphql)

    @property
    def api_url(self) -> str:
        return self.base

    def live(self) -> list[StandInPod]:
        """Pods still billing (not stopped, not terminated)."""
        return [p for p in self.pods.values() if p.status == "RUNNING"]

    # ------------------------------------------------------------------ GraphQL
    def _graphql(self, match, body, headers):
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"errors": [{"message": "Unauthorized"}]}
        query = json.loads(body)["query"]
        self.queries.append(query)
        with self._lock:
            try:
                return 200, {"data": self._answer(query)}
            except LookupError as exc:
                return 200, {"errors": [{"message": str(exc)}]}

    def _answer(self, q: str) -> dict:
        arg = lambda name: (re.search(name + r'\s*:\s*"([^"]*)"', q) or [None, None])[1]  # noqa: E731
        if "podFindAndDeployOnDemand" in q:
            return {"podFindAndDeployOnDemand": self._create(arg("name"), arg("imageName"), arg("gpuTypeId"))}
        if "podStop" in q:
            pod = self._pod(arg("podId"))
            pod.status = "EXITED"
            return {"podStop": {"id": pod.id, "desiredStatus": pod.status}}
        if "podTerminate" in q:
            self._pod(arg("podId")).status = "TERMINATED"
            return {"podTerminate": None}
        if "gpuTypes" in q:
            gid = arg("id")
            found = [gid] if gid in GPUS else [] if gid else list(GPUS)
            return {"gpuTypes": [self._gpu(g) for g in found]}
        if re.search(r"\bpod\s*\(", q):
            pod = self.pods.get(arg("podId"))
            if pod is None or pod.status == "TERMINATED":
                return {"pod": None}
            pod.polls += 1
            return {"pod": pod.as_dict()}
        if "networkVolumes" in q:
            return {"myself": {"id": "user_standin", "pubKey": "", "networkVolumes": [
                {"id": v, "name": v, "size": 100, "dataCenterId": "EU-RO-1"} for v in self.volumes]}}
        if "myself" in q and "pods" in q:
            return {"myself": {"pods": [p.as_dict() for p in self.pods.values() if p.status != "TERMINATED"]}}
        raise LookupError(f"stand-in does not know this query: {q[:80]}")

    def _create(self, name, image, gpu) -> dict:
        if len(self.live()) >= self.capacity:
            raise LookupError(NO_CAPACITY + (f" (key {self.api_key})" if self.echo_key_in_errors else ""))
        pid = f"pod{next(self._ids):03d}x"
        backend = self.backends[len(self.pods)] if len(self.pods) < len(self.backends) else None
        cost = self.cost_per_hr if self.cost_per_hr is not None else GPUS.get(gpu, ("", 0, 1.0))[2]
        self.pods[pid] = StandInPod(pid, name, image, gpu, cost, backend, self.boot_polls)
        return {"id": pid, "imageName": image, "env": [], "machineId": "m-1", "machine": {"podHostId": f"{pid}-host"}}

    def _pod(self, pod_id) -> StandInPod:
        pod = self.pods.get(pod_id)
        if pod is None:
            raise LookupError("pod not found")
        return pod

    @staticmethod
    def _gpu(gid: str) -> dict:
        display, mem, price = GPUS[gid]
        return {"maxGpuCount": 8, "id": gid, "displayName": display, "manufacturer": "Nvidia", "memoryInGb": mem,
                "cudaCores": 0, "secureCloud": True, "communityCloud": True, "securePrice": price,
                "communityPrice": round(price * 0.6, 2), "oneMonthPrice": None, "threeMonthPrice": None,
                "oneWeekPrice": None, "communitySpotPrice": None, "secureSpotPrice": None,
                "lowestPrice": {"minimumBidPrice": None, "uninterruptablePrice": price}}
