"""HTTP client of one RunPod Serverless endpoint, and the run folder's journal of the RunPod
job id of every submission (``Journal``). The client speaks ``/run``, ``/status/{id}``,
``/cancel/{id}`` and ``/health`` (routes and limits: RunPod's serverless docs,
``serverless/endpoints/operation-reference.mdx``). Raw ``requests`` rather than the SDK's
``Endpoint``: its retries are mounted on ``http://`` only and ``run_sync`` drops the
``error`` field (runpod-python 1.12.0, ``runpod/endpoint/runner.py``), so backoff on
429/5xx is done here, and ``POST /run`` is sent again only when RunPod surely did not
get it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests
import urllib3

from driver.errors import ConfigError, LostContact
from driver.files import atomic_write_json, now

from .errors import RunPodApiError, RunPodAuthError, ServerlessSubmitUnknown
from .redact import redact

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
SCHEME = "runpod:"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def surely_not_sent(exc: requests.RequestException) -> bool:
    """True when the request never reached RunPod: the connection itself failed (refused,
    no route, name not resolved, connect timeout). A read timeout or a connection dropped
    after sending may have delivered it."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), urllib3.exceptions.NewConnectionError)
    return False


def parse_endpoint(spec: str) -> str:
    """``runpod:ENDPOINT_ID`` -> ``ENDPOINT_ID``."""
    if not spec.startswith(SCHEME) or not spec[len(SCHEME):].strip() or "/" in spec[len(SCHEME):]:
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

    def _call(self, method: str, path: str, *, body: bytes | None = None, allow_404: bool = False,
              resend: bool = True):
        """One API call with backoff on 429, 5xx and network errors. ``resend=False``
        (``POST /run``): sent again only when RunPod surely did not get it (no connection
        made, or 429); after a read timeout or a 5xx the job may exist, so
        :class:`ServerlessSubmitUnknown` is raised instead of starting a second one."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.request(method, self.url + path, data=body, timeout=self.request_timeout)
            except requests.RequestException as exc:
                what = f"{exc.__class__.__name__}: {exc}"
                if not resend and not surely_not_sent(exc):
                    raise self._unknown(method, path, what) from None
                if last:
                    raise LostContact(redact(f"RunPod endpoint {self.endpoint_id}: {method} {path} failed: {what}")
                                      ) from None
            else:
                status = resp.status_code
                if status == 401:
                    raise RunPodAuthError(f"RunPod refused the API key for endpoint {self.endpoint_id} (HTTP 401); "
                                          "check RUNPOD_API_KEY or ~/.runpod/config.toml")
                if status == 404 and allow_404:
                    return None
                if status < 400:
                    return self._json(resp, method, path, resend)
                if not resend and status != 429 and status in RETRY_STATUS:
                    raise self._unknown(method, path, f"HTTP {status} {resp.text[:200]}")
                if status not in RETRY_STATUS or last:
                    raise RunPodApiError(redact(f"RunPod endpoint {self.endpoint_id}: {method} {path}: "
                                                f"HTTP {status} {resp.text[:300]}"))
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _json(self, resp, method: str, path: str, resend: bool):
        try:
            return resp.json()
        except ValueError:
            if not resend:
                raise self._unknown(method, path, f"HTTP {resp.status_code}, not JSON: {resp.text[:200]}") from None
            raise RunPodApiError(redact(f"RunPod endpoint {self.endpoint_id}: {method} {path}: HTTP "
                                        f"{resp.status_code}, not JSON: {resp.text[:300]}")) from None

    def _unknown(self, method: str, path: str, what: str) -> ServerlessSubmitUnknown:
        return ServerlessSubmitUnknown(redact(
            f"RunPod endpoint {self.endpoint_id}: {method} {path} got no usable answer ({what}); RunPod may have "
            "started the job, so it is not sent again (that would pay for it twice) and its result, if any, is not "
            "collected; rerun to send the shot again"))

    def run(self, body: bytes) -> str:
        data = self._call("POST", "/run", body=body, resend=False)
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
