"""Stand-in of a RunPod Serverless endpoint running worker-comfyui 5.8.5, at the HTTP
boundary the driver uses: ``POST /v2/{id}/run``, ``GET /v2/{id}/status/{job}``,
``POST /v2/{id}/cancel/{job}``, ``GET /v2/{id}/health`` (routes, bodies and job states:
RunPod's serverless docs, ``serverless/endpoints/operation-reference.mdx`` and
``job-states.mdx``; runpod.md §1.7). Its "ComfyUI" is a real HTTP server (the test
harness's CPU ComfyUI, or a scripted one): each job runs through
:mod:`devkit.standins.worker_handler`, the worker's handler (worker-comfyui 5.8.5
``handler.py``) and the SDK's ``run_job`` (runpod-python 1.12.0), so what ``/status``
returns has the real shapes: a result with ``error`` is FAILED with that ``error`` and
the rest as ``output``; otherwise COMPLETED with ``output`` (files base64, or an
``s3_url`` served by the stand-in under a random key as ``rp_upload`` does).

Knobs for failure tests: ``max_result_bytes`` (a result over it comes back ``COMPLETED``
without ``output``, like RunPod's 20 MB limit), ``hold`` (an Event jobs wait on before
starting, to cancel or time them out while queued), ``s3``, ``running_state``
(``IN_PROGRESS`` or ``RUNNING``: the docs list both; ``run_s`` keeps each job in it at
least that long), ``failed_output`` (False: FAILED
jobs come back without ``output``, as the SDK's local API server answers them) and
``run_faults``: one per ``/run`` request, in order: ``"slow"`` (the job is accepted,
the answer comes after ``fault_delay_s``: a client read timeout), ``"502_after"`` (the
job is accepted, the answer is an HTML 502 page), ``"502"`` (HTML 502, nothing
accepted), ``"429"`` (rate limited, nothing accepted)."""

from __future__ import annotations

import base64
import itertools
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from devkit.standins import worker_handler
from devkit.standins.http import JsonServer, bad_gateway


@dataclass
class Job:
    id: str
    input: dict
    policy: dict
    submitted: float = field(default_factory=time.monotonic)
    status: str = "IN_QUEUE"
    output: dict | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    prompt_id: str | None = None


class WorkerComfyStandIn(JsonServer):
    def __init__(self, comfy_url: str, *, api_key: str, endpoint_id: str = "ep-standin", workers: int = 1,
                 s3: bool = False, max_result_bytes: int | None = None, hold: threading.Event | None = None,
                 running_state: str = "IN_PROGRESS", failed_output: bool = True, run_faults: list[str] = (),
                 fault_delay_s: float = 2.0, run_s: float = 0.0):
        super().__init__()
        self.comfy = comfy_url.rstrip("/")
        self.api_key, self.endpoint_id = api_key, endpoint_id
        self.s3, self.max_result_bytes, self.hold = s3, max_result_bytes, hold
        self.running_state, self.failed_output = running_state, failed_output
        self.run_faults, self.fault_delay_s, self.run_s = list(run_faults), fault_delay_s, run_s
        self.states: list[str] = []  # every state /status answered, in order
        self.jobs: dict[str, Job] = {}
        self.s3_store: dict[str, bytes] = {}
        self.runs: list[dict] = []  # bodies received on /run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"worker-{i}") for i in range(workers)]
        p = f"/v2/{endpoint_id}"
        self.route("POST", p + r"/run", self._run)
        self.route("GET", p + r"/status/(?P<job>[^/?]+)", self._status)
        self.route("POST", p + r"/cancel/(?P<job>[^/?]+)", self._cancel)
        self.route("GET", p + r"/health", self._health)
        self.route("GET", r"/s3/(?P<key>[^?]+)", self._s3)

    @property
    def base_url(self) -> str:
        return f"{self.base}/v2"

    def start(self):
        super().start()
        for w in self._workers:
            w.start()
        return self

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        super().stop()

    # ------------------------------------------------------------------ HTTP side
    def _authorised(self, headers) -> bool:
        return headers.get("Authorization") in (f"Bearer {self.api_key}", self.api_key)

    def _run(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        if len(body) > 10 * 1024 * 1024:
            return 413, {"error": "payload too large"}
        fault = self.run_faults.pop(0) if self.run_faults else None
        if fault == "429":
            return 429, {"error": "rate limited"}
        if fault == "502":
            return bad_gateway()
        doc = json.loads(body)
        self.runs.append(doc)
        job = Job(f"job-{next(self._ids)}-{uuid.uuid4().hex[:6]}", doc.get("input"), doc.get("policy") or {})
        self.jobs[job.id] = job
        self._queue.put(job)
        if fault == "slow":
            time.sleep(self.fault_delay_s)
        if fault == "502_after":
            return bad_gateway()
        return 200, {"id": job.id, "status": "IN_QUEUE"}

    def _status(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        job = self.jobs.get(match["job"])
        if job is None:
            return 404, {"error": "job not found"}
        out = {"id": job.id, "status": job.status}
        self.states.append(job.status)
        if job.started is not None:
            out["delayTime"] = int((job.started - job.submitted) * 1000)
        if job.finished is not None and job.started is not None:
            out["executionTime"] = int((job.finished - job.started) * 1000)
        if job.output is not None:
            out["output"] = job.output
        if job.error is not None:
            out["error"] = job.error
        return 200, out

    def _cancel(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        job = self.jobs.get(match["job"])
        if job is None:
            return 404, {"error": "job not found"}
        if job.status in ("IN_QUEUE", self.running_state):
            if job.status == self.running_state and job.prompt_id:
                requests.post(f"{self.comfy}/interrupt", json={"prompt_id": job.prompt_id}, timeout=10)
            job.status = "CANCELLED"
        return 200, {"id": job.id, "status": job.status}

    def _health(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        count = {s: sum(1 for j in self.jobs.values() if j.status == s) for s in
                 ("COMPLETED", "FAILED", self.running_state, "IN_QUEUE")}
        busy = count[self.running_state]
        return 200, {"jobs": {"completed": count["COMPLETED"], "failed": count["FAILED"],
                              "inProgress": busy, "inQueue": count["IN_QUEUE"], "retried": 0},
                     "workers": {"idle": len(self._workers) - busy, "running": busy}}

    def _s3(self, match, body, headers):
        blob = self.s3_store.get(match["key"])
        return (200, blob) if blob is not None else (404, {"error": "NoSuchKey"})

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if self.hold is not None:
                self.hold.wait()
            if job.status != "IN_QUEUE":
                continue
            job.status, job.started = self.running_state, time.monotonic()
            time.sleep(self.run_s)
            result = worker_handler.run_job(lambda: worker_handler.handler(
                self.comfy, job.input, store=lambda name, blob: self._store(job, name, blob),
                on_queued=lambda pid: setattr(job, "prompt_id", pid)))
            job.finished = time.monotonic()
            if job.status == "CANCELLED":
                continue
            if "error" in result:
                job.status, job.error = "FAILED", result["error"]
                job.output = result.get("output") if self.failed_output else None
            else:
                job.status = "COMPLETED"
                too_big = self.max_result_bytes and len(json.dumps(result)) > self.max_result_bytes
                job.output = None if too_big else result.get("output")

    def _store(self, job: Job, filename: str, blob: bytes) -> dict:
        """One returned file, as the handler lists it: base64, or an S3 URL (rp_upload's
        key: ``<job id>/<8 random hex><ext>``, not the file's name)."""
        if not self.s3:
            return {"filename": filename, "type": "base64", "data": base64.b64encode(blob).decode("ascii")}
        key = f"{job.id}/{uuid.uuid4().hex[:8]}.{filename.rsplit('.', 1)[-1]}"
        self.s3_store[key] = blob
        return {"filename": filename, "type": "s3_url", "data": f"{self.base}/s3/{key}"}
