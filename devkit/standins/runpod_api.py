"""Stand-in of RunPod's GraphQL API (``POST /graphql``) for what the runpod SDK 1.12.0 pod
functions send (read in runpod/runpod-python at v1.12.0, commit 07fc6e2:
``runpod/api/queries/pods.py``, ``mutations/pods.py``, ``queries/gpus.py``):
``gpuTypes``, ``podFindAndDeployOnDemand``, ``pod``, ``myself { pods }``, ``podStop``,
``podTerminate``. Responses follow runpod.md §1.2: a created pod is ``RUNNING`` with
``runtime: null`` until it "boots", then its port 8188 is mapped (``isIpPublic``,
``publicPort``) to a real local ComfyUI given in ``backends`` (one per pod, in creation
order; a pod without one never gets ports, i.e. never becomes ready). A wrong key gets
HTTP 401; no capacity left gets the GraphQL error RunPod sends.

``faults`` (operation -> faults, one per request of that operation, in order; operations
``create``, ``pod``, ``pods``, ``gpu``, ``stop``, ``terminate``) reproduces what the SDK
meets on the real service: ``"502"`` (an HTML 502 page and nothing done; the SDK's
``run_graphql_query`` in ``runpod/api/graphql.py`` calls ``response.json()`` on it and
raises a JSON ValueError), ``"502_after"`` (the operation is done, then the 502 page:
a pod created whose answer is lost), ``"query_error"`` / ``"query_error_after"``
(GraphQL ``errors`` with RunPod's generic "Something went wrong" message, runpod-python
issues #150 and #239, which the SDK raises as ``QueryError``)."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field

from devkit.standins.http import JsonServer, bad_gateway

SOMETHING_WENT_WRONG = "Something went wrong. Please try again later or contact support."
NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")
#: A pod image name as docker/README.md builds it (the stand-in pulls nothing).
IMAGE = "ghcr.io/example/anime-pipeline-pod:0.1.0"
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


def _operation(query: str) -> str:
    for word, op in (("podFindAndDeployOnDemand", "create"), ("podStop", "stop"), ("podTerminate", "terminate"),
                     ("gpuTypes", "gpu"), ("networkVolumes", "volumes")):
        if word in query:
            return op
    return "pod" if re.search(r"\bpod\s*\(", query) else "pods"


class RunPodApiStandIn(JsonServer):
    def __init__(self, *, api_key: str, backends: list[tuple[str, int]] = (), capacity: int = 99,
                 boot_polls: int = 1, cost_per_hr: float | None = None, echo_key_in_errors: bool = False,
                 faults: dict[str, list[str]] | None = None):
        super().__init__()
        self.faults = {op: list(f) for op, f in (faults or {}).items()}
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
            pending = self.faults.get(_operation(query)) or []
            fault = pending.pop(0) if pending else None
            if fault in ("502", "query_error"):  # nothing done
                return bad_gateway() if fault == "502" else (200, {"errors": [{"message": SOMETHING_WENT_WRONG}]})
            try:
                answer = 200, {"data": self._answer(query)}
            except LookupError as exc:
                answer = 200, {"errors": [{"message": str(exc)}]}
            if fault == "502_after":
                return bad_gateway()
            if fault == "query_error_after":
                return 200, {"errors": [{"message": SOMETHING_WENT_WRONG}]}
            return answer

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
