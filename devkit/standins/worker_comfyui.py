"""Stand-in of a RunPod Serverless endpoint running worker-comfyui 5.8.5, at the HTTP
boundary the driver uses: ``POST /v2/{id}/run``, ``GET /v2/{id}/status/{job}``,
``POST /v2/{id}/cancel/{job}``, ``GET /v2/{id}/health`` (shapes: runpod.md §1.7, §2.2,
§2.3, §2.6). Its "ComfyUI" is a real local server (the test harness's): each job's
images are uploaded to ``/upload/image`` by name, the workflow is queued, the outcome is
read from ``/history`` and every non-temp file under ``images`` is returned base64 (or
as an ``s3_url`` served by the stand-in, with a random key as rp_upload does); other
output keys are dropped, as the real handler does.

Knobs for failure tests: ``max_result_bytes`` (a result over it comes back ``COMPLETED``
without ``output``, like RunPod's 20 MB limit), ``hold`` (an Event jobs wait on before
starting, to cancel or time them out while queued), ``s3``."""

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

from devkit.standins.http import JsonServer


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
                 s3: bool = False, max_result_bytes: int | None = None, hold: threading.Event | None = None):
        super().__init__()
        self.comfy = comfy_url.rstrip("/")
        self.api_key, self.endpoint_id = api_key, endpoint_id
        self.s3, self.max_result_bytes, self.hold = s3, max_result_bytes, hold
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
        doc = json.loads(body)
        self.runs.append(doc)
        job = Job(f"job-{next(self._ids)}-{uuid.uuid4().hex[:6]}", doc.get("input"), doc.get("policy") or {})
        self.jobs[job.id] = job
        self._queue.put(job)
        return 200, {"id": job.id, "status": "IN_QUEUE"}

    def _status(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        job = self.jobs.get(match["job"])
        if job is None:
            return 404, {"error": "job not found"}
        out = {"id": job.id, "status": job.status}
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
        if job.status in ("IN_QUEUE", "IN_PROGRESS"):
            if job.status == "IN_PROGRESS" and job.prompt_id:
                requests.post(f"{self.comfy}/interrupt", json={"prompt_id": job.prompt_id}, timeout=10)
            job.status = "CANCELLED"
        return 200, {"id": job.id, "status": job.status}

    def _health(self, match, body, headers):
        if not self._authorised(headers):
            return 401, {"error": "Unauthorized"}
        count = {s: sum(1 for j in self.jobs.values() if j.status == s) for s in
                 ("COMPLETED", "FAILED", "IN_PROGRESS", "IN_QUEUE")}
        return 200, {"jobs": {"completed": count["COMPLETED"], "failed": count["FAILED"],
                              "inProgress": count["IN_PROGRESS"], "inQueue": count["IN_QUEUE"], "retried": 0},
                     "workers": {"idle": len(self._workers) - count["IN_PROGRESS"], "running": count["IN_PROGRESS"]}}

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
            job.status, job.started = "IN_PROGRESS", time.monotonic()
            try:
                result = self._handle(job)
            except Exception as exc:  # noqa: BLE001 - reported as the job's error, like the handler
                result = {"error": f"Job processing failed: {exc}"}
            job.finished = time.monotonic()
            if job.status == "CANCELLED":
                continue
            if "error" in result:
                job.status, job.error = "FAILED", result["error"]
            else:
                job.status = "COMPLETED"
                too_big = self.max_result_bytes and len(json.dumps(result)) > self.max_result_bytes
                job.output = None if too_big else result

    def _handle(self, job: Job) -> dict:
        payload = job.input
        if isinstance(payload, str):
            payload = json.loads(payload)
        if not isinstance(payload, dict) or "workflow" not in payload:
            return {"error": "Missing 'workflow' parameter"}
        for img in payload.get("images") or []:
            data = img["image"].split(",", 1)[1] if img["image"].startswith("data:") else img["image"]
            r = requests.post(f"{self.comfy}/upload/image", files={"image": (img["name"], base64.b64decode(data),
                                                                             "image/png")},
                              data={"overwrite": "true"}, timeout=30)
            if r.status_code != 200:
                return {"error": "Failed to upload one or more input images"}
        r = requests.post(f"{self.comfy}/prompt", json={"prompt": payload["workflow"], "client_id": uuid.uuid4().hex},
                          timeout=30)
        if r.status_code != 200 or r.json().get("node_errors"):
            data = r.json()
            lines = [f"Node {nid} ({e.get('class_type')}): {x.get('message')}: {x.get('details')}"
                     for nid, e in (data.get("node_errors") or {}).items() for x in e.get("errors", [])]
            err = data.get("error") or {}
            return {"error": "Workflow validation failed:\n" + "\n".join(
                [f"{err.get('message', '')}: {err.get('details', '')}".strip(": "), *lines])}
        job.prompt_id = r.json()["prompt_id"]
        while True:
            entry = requests.get(f"{self.comfy}/history/{job.prompt_id}", timeout=30).json().get(job.prompt_id)
            if entry and (entry.get("status") or {}).get("completed") is not None:
                break
            time.sleep(0.1)
        status = entry["status"]
        if status.get("status_str") != "success":
            for event, data in status.get("messages", []):
                if event == "execution_error":
                    return {"error": f"Workflow execution error: Node Type: {data.get('node_type')}, Node ID: "
                                     f"{data.get('node_id')}, Message: {data.get('exception_message')}"}
            return {"error": "Job processing failed"}
        images = []
        for _node, ui in (entry.get("outputs") or {}).items():
            for item in ui.get("images") or []:
                if item.get("type") == "temp":
                    continue
                blob = requests.get(f"{self.comfy}/view", params={"filename": item["filename"], "subfolder":
                                    item.get("subfolder", ""), "type": item.get("type", "output")}, timeout=60).content
                if self.s3:
                    key = f"{job.id}/{uuid.uuid4().hex[:8]}{'.' + item['filename'].rsplit('.', 1)[-1]}"
                    self.s3_store[key] = blob
                    images.append({"filename": item["filename"], "type": "s3_url", "data": f"{self.base}/s3/{key}"})
                else:
                    images.append({"filename": item["filename"], "type": "base64",
                                   "data": base64.b64encode(blob).decode("ascii")})
        return {"images": images} if images else {"status": "success_no_images", "images": []}
