"""One RunPod Serverless endpoint over HTTP (``/run``, ``/status``, ``/cancel``,
``/health``; raw requests, so the ``error`` field is kept, with its own backoff on 429
and 5xx) and the run folder's journal of the RunPod job id of every submission."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests

from driver.errors import LostContact
from driver.files import atomic_write_json, now

from .errors import RunPodApiError, RunPodAuthError
from .redact import redact

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
SCHEME = "runpod:"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def parse_endpoint(spec: str) -> str:
    """``runpod:ENDPOINT_ID`` -> ``ENDPOINT_ID``."""
    if not spec.startswith(SCHEME) or not spec[len(SCHEME):].strip() or "/" in spec[len(SCHEME):]:
        from driver.errors import ConfigError
        raise ConfigError(f"--endpoint must look like runpod:ENDPOINT_ID, got {spec!r}")
    return spec[len(SCHEME):].strip()


class EndpointClient:
    """HTTP client of one endpoint: ``/run``, ``/status/{id}``, ``/cancel/{id}``, ``/health``."""

    def __init__(self, endpoint_id: str, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 request_timeout: float = 30.0, retries: int = 5, backoff_s: float = 1.0):
        self.endpoint_id = endpoint_id
        self.url = f"{base_url.rstrip('/')}/{endpoint_id}"
        self.request_timeout, self.retries, self.backoff_s = request_timeout, retries, backoff_s
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})

    def _call(self, method: str, path: str, *, body: bytes | None = None, allow_404: bool = False):
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                resp = self.session.request(method, self.url + path, data=body, timeout=self.request_timeout)
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise LostContact(redact(f"RunPod endpoint {self.endpoint_id}: {method} {path} failed: "
                                             f"{exc.__class__.__name__}: {exc}")) from None
            else:
                if resp.status_code == 401:
                    raise RunPodAuthError(f"RunPod refused the API key for endpoint {self.endpoint_id} (HTTP 401); "
                                          "check RUNPOD_API_KEY or ~/.runpod/config.toml")
                if resp.status_code == 404 and allow_404:
                    return None
                if resp.status_code < 400:
                    return resp.json()
                if resp.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise RunPodApiError(redact(f"RunPod endpoint {self.endpoint_id}: {method} {path}: "
                                                f"HTTP {resp.status_code} {resp.text[:300]}"))
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def run(self, body: bytes) -> str:
        data = self._call("POST", "/run", body=body)
        if not isinstance(data, dict) or not data.get("id"):
            raise RunPodApiError(redact(f"RunPod endpoint {self.endpoint_id}: /run returned no job id: {data!r:.300}"))
        return data["id"]

    def status(self, job_id: str) -> dict | None:
        """The job's status, or None when RunPod no longer knows it (TTL passed)."""
        return self._call("GET", f"/status/{job_id}", allow_404=True)

    def cancel(self, job_id: str) -> None:
        self._call("POST", f"/cancel/{job_id}", allow_404=True)

    def health(self) -> dict:
        return self._call("GET", "/health")


class Journal:
    """prompt id -> RunPod job id, on disk (atomic writes), for in-flight recovery."""

    def __init__(self, path: Path | None):
        self.path, self._lock = path, threading.Lock()
        self._data: dict = {}
        if path is not None and path.is_file():
            self._data = json.loads(path.read_text(encoding="utf-8"))

    def get(self, prompt_id: str) -> str | None:
        with self._lock:
            return (self._data.get(prompt_id) or {}).get("job_id")

    def record(self, prompt_id: str, endpoint: str, job_id: str, **extra) -> None:
        with self._lock:
            self._data[prompt_id] = {"endpoint": endpoint, "job_id": job_id, "at": now(), **extra}
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.path, self._data)
