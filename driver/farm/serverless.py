"""RunPod Serverless with the official worker-comfyui (``--endpoint runpod:ENDPOINT_ID``).

One endpoint is one member of the pool with several slots: RunPod's queue and its
autoscaler decide where each job runs; the driver bounds how many it has in flight,
sends each job as ``{"input": {"workflow", "images": [{"name", "image"}]}, "policy"}``
to ``/run`` (:mod:`.runpod_endpoint`: never sent twice), polls ``/status``, decodes
outputs (``base64`` or ``s3_url``) and writes them where the scheduler asks. The known
gaps are handled before they bite: bodies over ~9.5 MB are refused up front; a job
``COMPLETED`` without the expected files is a failure; a job past its deadline is
cancelled (every state but ``IN_QUEUE`` counts as running: ``IN_PROGRESS``, ``RUNNING``);
Ctrl-C cancels every job in flight.

What went wrong is read wherever worker-comfyui 5.8.5 puts it (``error``,
``output.details``, ``output.errors``: :func:`.worker_outputs.failure_texts`): a gate
stop's report on FAILED and COMPLETED jobs alike, a missing node type from the
structure of ComfyUI's answer. ``AP_QualityReport`` is sent with ``policy=report`` so
a failed gate comes back as a COMPLETED job with its summary card.

Each submission's RunPod job id is journalled in the run folder
(``farm/serverless_jobs.json``) before the driver waits on it, so a rerun after a crash
asks RunPod about the job instead of paying for it twice."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import requests

from driver.errors import Cancelled, LostContact, OutputMissing
from driver.files import atomic_write_chunks
from driver.outputs.quality import REPORT_MARKER, parse_report_from_error
from driver.outputs.verify import verify_file
from driver.render.attempt import Attempt, Limits
from driver.render.compile import REPORT
from driver.render.executor import Executor, Outcome, upload_name

from .errors import (
    PackMissing,
    PayloadTooLarge,
    RunPodApiError,
    ServerlessCancelled,
    ServerlessJobFailed,
    ServerlessNoOutput,
    ServerlessTimeout,
)
from .images import SERVERLESS_IMAGE
from .redact import redact
from .runpod_endpoint import DEFAULT_BASE_URL, SCHEME, EndpointClient, Journal, parse_endpoint  # noqa: F401 (re-exported)
from .worker_outputs import (
    RESULT_LIMIT,
    RUN_PAYLOAD_LIMIT,
    b64_size,
    decode_base64,
    failure_texts,
    missing_node,
    prefix_roles,
    report_from_png,
    role_of,
    with_report_policy,
)

log = logging.getLogger(__name__)

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def serverless_input_names(run_id: str, files: dict[str, Path]) -> dict[str, str]:
    """Flat names (worker-comfyui uploads into ComfyUI's input folder, no subfolder)."""
    return {role: f"ap-{run_id}-{upload_name(Path(p), role)}" for role, p in files.items()}


class ServerlessExecutor(Executor):
    """Runs attempts on a worker-comfyui endpoint (a :class:`driver.render.executor.Executor`)."""

    kind = "serverless"

    def __init__(self, endpoint: EndpointClient, *, run_id: str, job_timeout: float, journal: Journal,
                 queue_timeout_s: float = 3600.0, poll_s: tuple[float, float] = (0.5, 5.0),
                 payload_limit: int = RUN_PAYLOAD_LIMIT, result_limit: int | None = RESULT_LIMIT):
        super().__init__()
        self.payload_limit, self.result_limit = payload_limit, result_limit  # result_limit None: outputs go to S3
        self.endpoint, self.run_id, self.job_timeout = endpoint, run_id, job_timeout
        self.journal, self.queue_timeout_s, self.poll_s = journal, queue_timeout_s, poll_s
        self._files: dict[str, Path] = {}
        self._active: dict[str, str] = {}  # job id -> prompt id
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._downloads = requests.Session()  # no API key on presigned S3 URLs

    @property
    def server(self) -> str:
        return f"{SCHEME}{self.endpoint.endpoint_id}"

    @property
    def client_id(self) -> str:
        """What the manifest records as the attempt's client: the endpoint."""
        return self.server

    def limits(self) -> Limits:
        """The ``/run`` body (inputs inside, base64) and, without an S3 bucket, the result."""
        where = f"RunPod Serverless {self.server} (/run body up to {self.payload_limit / 1e6:.1f} MB, base64" + (
            f"; results up to {self.result_limit / 1e6:.0f} MB)" if self.result_limit else ")")
        return Limits(body_bytes=self.payload_limit, result_bytes=self.result_limit, where=where)

    # ------------------------------------------------------------------ inputs
    def input_names(self, files: dict[str, Path]) -> dict[str, str]:
        return serverless_input_names(self.run_id, files)

    def upload(self, files: dict[str, Path]) -> dict[str, str]:
        """Nothing leaves the machine yet: inputs travel base64 in each job's body."""
        names = self.input_names(files)
        with self._lock:
            self._files.update({names[r]: Path(p) for r, p in files.items()})
        return names

    def body(self, compiled: Attempt) -> bytes:
        """The ``/run`` body; PayloadTooLarge when it would pass RunPod's limit."""
        import base64

        with self._lock:
            files = dict(self._files)
        used = sorted({v for node in compiled.prompt.values() for v in (node.get("inputs") or {}).values()
                       if isinstance(v, str) and v in files})
        sizes = {n: files[n].stat().st_size for n in used}
        estimate = len(json.dumps(compiled.prompt)) + sum(b64_size(s) + len(n) + 40 for n, s in sizes.items())
        if estimate > self.payload_limit:
            listing = ", ".join(f"{n} ({s / 1e6:.1f} MB)" for n, s in sorted(sizes.items(), key=lambda x: -x[1]))
            raise PayloadTooLarge(
                f"{compiled.job.id}: the /run body would be ~{estimate / 1e6:.1f} MB, over the endpoint's "
                f"{self.payload_limit / 1e6:.1f} MB limit (RunPod's is 10 MB) "
                f"(inputs travel base64: {listing or 'none'}); use smaller keyframes, or a pool of pods for this shot",
                shot=compiled.job.shot)
        timeout_ms = int(min(max(self.job_timeout, 5.0), 7 * 86400) * 1000)
        doc = {"input": {"workflow": with_report_policy(compiled.prompt),
                         "images": [{"name": n, "image": base64.b64encode(files[n].read_bytes()).decode("ascii")}
                                    for n in used]},
               "policy": {"executionTimeout": timeout_ms,
                          "ttl": int(min(7 * 86400 * 1000, timeout_ms + self.queue_timeout_s * 1000 + 600_000))}}
        return json.dumps(doc).encode()

    # ------------------------------------------------------------------ running
    def run_attempt(self, compiled: Attempt, dest_for, *, in_flight: bool = False, resubmit=None) -> Outcome:
        t0 = time.monotonic()
        job_id = self.journal.get(compiled.prompt_id) if in_flight else None
        status = self.endpoint.status(job_id) if job_id else None
        if status is None or job_id is None:
            if in_flight:
                log.info("%s is unknown to RunPod (expired or never sent); submitting it again", compiled.prompt_id)
                compiled = resubmit() if resubmit else compiled
            job_id = self.endpoint.run(self.body(compiled))
            self.journal.record(compiled.prompt_id, self.endpoint.endpoint_id, job_id)
            log.info("%s: RunPod job %s", compiled.prompt_id, job_id)
        with self._lock:
            self._active[job_id] = compiled.prompt_id
        try:
            status = self._wait(job_id, compiled, t0)
        finally:
            with self._lock:
                self._active.pop(job_id, None)
        return self._outcome(compiled, job_id, status, dest_for, t0)

    def _wait(self, job_id: str, compiled: Attempt, t0: float) -> dict:
        interval, cap = self.poll_s
        queue_deadline = t0 + self.queue_timeout_s
        run_deadline = None
        while True:
            if self._cancelled.is_set():
                self._cancel(job_id)
                raise Cancelled(f"stopped by the user; RunPod job {job_id} was cancelled")
            status = self.endpoint.status(job_id)
            if status is None:
                raise ServerlessJobFailed(f"RunPod job {job_id} ({compiled.prompt_id}) is no longer known "
                                          "(its TTL passed?)", prompt_id=compiled.prompt_id, shot=compiled.job.shot)
            state = status.get("status")
            if state in TERMINAL:
                return status
            clock = time.monotonic()
            if state != "IN_QUEUE" and run_deadline is None:  # IN_PROGRESS, RUNNING (job-states docs), ...
                run_deadline = clock + self.job_timeout
            if clock > (run_deadline or queue_deadline):
                self._cancel(job_id)
                where = "running" if run_deadline else "in the queue"
                limit = self.job_timeout if run_deadline else self.queue_timeout_s
                raise ServerlessTimeout(f"RunPod job {job_id} ({compiled.prompt_id}) was still {where} after "
                                        f"{limit:.0f} s; it was cancelled", prompt_id=compiled.prompt_id,
                                        shot=compiled.job.shot)
            self._cancelled.wait(interval)
            interval = min(cap, interval * 1.5)

    def _cancel(self, job_id: str) -> None:
        try:
            self.endpoint.cancel(job_id)
        except (LostContact, RunPodApiError) as exc:
            log.warning("could not cancel RunPod job %s: %s", job_id, exc)

    def cancel_all(self) -> None:
        """Ctrl-C: cancel every job in flight (waiting threads then raise Cancelled)."""
        self._cancelled.set()
        with self._lock:
            jobs = list(self._active)
        for job_id in jobs:
            self._cancel(job_id)

    # ------------------------------------------------------------------ outcome
    def _outcome(self, compiled: Attempt, job_id: str, status: dict, dest_for, t0: float) -> Outcome:
        state, shot, pid = status.get("status"), compiled.job.shot, compiled.prompt_id
        texts = failure_texts(status)
        stop = next((r for r in map(parse_report_from_error, (t for t in texts if REPORT_MARKER in t)) if r), None)
        if stop is not None:  # a gate stopped the prompt: FAILED without images, or COMPLETED with some
            return Outcome(report=stop, stopped_by_gate=True, timings=self._timings(status, t0))
        if state == "FAILED":
            self._failed(compiled, job_id, texts)
        if state == "TIMED_OUT":
            raise ServerlessTimeout(f"RunPod job {job_id} timed out on the endpoint (policy executionTimeout "
                                    f"{self.job_timeout:.0f} s, or expired in the queue)", prompt_id=pid, shot=shot)
        if state == "CANCELLED":
            raise ServerlessCancelled(f"RunPod job {job_id} was cancelled", prompt_id=pid, shot=shot)
        output = status.get("output")
        if not isinstance(output, dict) or not output.get("images"):
            raise ServerlessNoOutput(
                f"RunPod job {job_id} ({pid}) COMPLETED without output files ({json.dumps(output)[:200]}); "
                "results over ~20 MB are dropped by RunPod: set BUCKET_ENDPOINT_URL on the endpoint so files go to S3",
                shot=shot)
        for warning in output.get("errors") or []:
            log.warning("%s: worker warning: %s", pid, redact(warning))
        t1 = time.monotonic()
        out = Outcome(timings=self._timings(status, t0))
        out.files, out.report = self._save(compiled, job_id, output["images"], dest_for)
        out.timings["download_s"] = round(time.monotonic() - t1, 4)
        return out

    def _failed(self, compiled: Attempt, job_id: str, texts: list[str]) -> None:
        message = redact("\n".join(texts) or "no error given")
        missing = missing_node(texts, compiled.prompt)
        if missing and missing.startswith("AP_"):
            raise PackMissing(f"endpoint {self.endpoint.endpoint_id} lacks the anime_pipeline pack (no node type "
                              f"{missing}): {message[:300]}; deploy the {SERVERLESS_IMAGE} image (docker/README.md)")
        if missing:
            message = f"the endpoint's ComfyUI has no node type {missing!r}: {message}"
        raise ServerlessJobFailed(f"RunPod job {job_id} failed: {message[:2000]}", prompt_id=compiled.prompt_id,
                                  exception_message=message, shot=compiled.job.shot)

    def _save(self, compiled: Attempt, job_id: str, images: list, dest_for) -> tuple[dict, dict | None]:
        prefixes = prefix_roles(compiled.prompt, compiled.outputs)
        wanted = set(compiled.outputs.values()) - {REPORT}
        files: dict[str, Path] = {}
        report = None
        for item in images:
            name = str(item.get("filename") or "")
            blob = self._fetch(item, job_id)
            role = role_of(name, prefixes)
            if role in wanted:
                if role in files:
                    raise OutputMissing(f"{compiled.prompt_id}: two files for {role!r} ({files[role].name}, {name})",
                                        shot=compiled.job.shot)
                dest = dest_for(role, Path(name).suffix.lstrip(".").lower() or "bin")
                atomic_write_chunks(dest, [blob])
                problem = verify_file(dest, compiled.job.frames if role == "video" else None)
                if problem:
                    raise OutputMissing(f"{compiled.prompt_id}: {name} ({role}) from RunPod job {job_id} {problem}",
                                        shot=compiled.job.shot)
                files[role] = dest
            elif report is None:
                report = report_from_png(blob)
        missing = sorted(wanted - set(files))
        if missing:
            got = [i.get("filename") for i in images]
            raise ServerlessNoOutput(f"{compiled.prompt_id}: RunPod job {job_id} returned no file for {missing} "
                                     f"(it returned {got})", shot=compiled.job.shot)
        if REPORT in compiled.outputs.values() and report is None:
            raise OutputMissing(f"{compiled.prompt_id}: no AP_QualityReport summary card with the report in the "
                                f"job's images (RunPod job {job_id})", shot=compiled.job.shot)
        return files, report

    def _fetch(self, item: dict, job_id: str) -> bytes:
        kind, data = item.get("type"), item.get("data") or ""
        if kind == "base64":
            return decode_base64(data)
        if kind == "s3_url":
            try:
                resp = self._downloads.get(data, timeout=120)
            except requests.RequestException as exc:
                raise OutputMissing(f"RunPod job {job_id}: download of {item.get('filename')} failed: {exc}") from None
            if resp.status_code != 200:
                raise OutputMissing(f"RunPod job {job_id}: {item.get('filename')} from S3: HTTP {resp.status_code}")
            return resp.content
        raise OutputMissing(f"RunPod job {job_id}: output {item.get('filename')!r} has unknown type {kind!r}")

    @staticmethod
    def _timings(status: dict, t0: float) -> dict:
        def sec(ms):
            return round(ms / 1000.0, 4) if isinstance(ms, (int, float)) else None
        return {"queue_s": sec(status.get("delayTime")), "execution_s": sec(status.get("executionTime")),
                "wall_s": round(time.monotonic() - t0, 4)}
