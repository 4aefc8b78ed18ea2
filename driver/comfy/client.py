"""HTTP + websocket client for one ComfyUI server (the driver's "client" layer).

Follows the protocol as verified on ComfyUI 0.3.64 (its ``server.py`` and ``execution.py``, and a live
server; the integration tests run it against one):

* every prompt is submitted with this client's ``client_id`` (without it no per-prompt
  events are sent) and a caller-chosen ``prompt_id``;
* a 200 from ``POST /prompt`` can still carry ``node_errors``: treated as a rejection;
* completion is ``executing`` with ``node: null`` for our prompt id (history is written
  just before it); when the socket drops, the client falls back to polling ``/history``;
* the outcome is always read from ``/history/{prompt_id}``, the server's own record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
import websocket

from ..errors import (
    DriverError,
    ExecutionFailed,
    Interrupted,
    LostContact,
    OutputMissing,
    PromptRejected,
    ServerUnreachable,
)
from ..files import atomic_write_chunks
from ..images import SourceRejected, read_image

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict], None]


class ComfyClient:
    """A session with one ComfyUI server.

    ``url`` is the server's base URL (``http://127.0.0.1:8188``). ``request_timeout``
    bounds each HTTP call; long waits are bounded by the ``timeout`` of :meth:`run`."""

    def __init__(self, url: str, *, client_id: str | None = None, request_timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.request_timeout = request_timeout
        self.session = requests.Session()

    # ------------------------------------------------------------------ HTTP basics
    def _request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", self.request_timeout)
        try:
            return self.session.request(method, self.url + path, **kw)
        except requests.ConnectionError as exc:
            raise ServerUnreachable(
                f"no ComfyUI answers at {self.url} ({exc.__class__.__name__}); start one with "
                f"`python main.py --listen 127.0.0.1 --port <port>` in your ComfyUI folder, "
                f"or pass --comfyui DIR to let the driver start one"
            ) from exc
        except requests.Timeout as exc:
            raise LostContact(f"{method} {path} on {self.url} timed out after {kw['timeout']} s") from exc

    def _json(self, method: str, path: str, **kw):
        resp = self._request(method, path, **kw)
        if resp.status_code >= 400:
            raise DriverError(f"{method} {path} on {self.url} failed: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def system_stats(self) -> dict:
        return self._json("GET", "/system_stats")

    def features(self) -> dict:
        """The server's feature flags and limits (``GET /features``, e.g. ``max_upload_size`` in bytes);
        ``{}`` from a server without the route (an older ComfyUI) or with an answer that is not a JSON object."""
        resp = self._request("GET", "/features")
        try:
            doc = resp.json() if resp.status_code < 400 else {}
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.5) -> dict:
        """Poll ``/system_stats`` until the server answers; raise ServerUnreachable after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.system_stats()
            except (ServerUnreachable, LostContact, DriverError):
                if time.monotonic() > deadline:
                    raise ServerUnreachable(f"ComfyUI at {self.url} did not answer within {timeout:.0f} s") from None
                time.sleep(interval)

    def object_info(self, node_class: str | None = None) -> dict:
        return self._json("GET", f"/object_info/{node_class}" if node_class else "/object_info")

    def models(self, folder: str) -> list[str]:
        return self._json("GET", f"/models/{folder}")

    def queue(self) -> dict:
        return self._json("GET", "/queue")

    def history(self, prompt_id: str) -> dict | None:
        """The history entry of ``prompt_id``, or None while it is unknown or unfinished."""
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id)

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def is_queued(self, prompt_id: str) -> bool:
        q = self.queue()
        return any(item[1] == prompt_id for item in q.get("queue_running", []) + q.get("queue_pending", []))

    # ------------------------------------------------------------------ files
    def upload_image(self, path: str | os.PathLike, subfolder: str = "", *, overwrite: bool = True,
                     name: str | None = None) -> str:
        """Upload a file to the server's input folder; returns the name to give ``LoadImage``.

        The file is opened once and the bytes checked are the bytes sent. Under a
        content-addressed ``name`` (``<sha256[:16]>_<role>.png``, a run's input:
        :func:`driver.render.executor.upload_name`) it must not have become a symlink, must
        decode, and must still be that hash (:class:`driver.images.SourceRejected` otherwise)."""
        path = Path(path)
        digest = (name or "").partition("_")[0]
        addressed = len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)  # a run's keyframe
        data = read_image(path) if addressed else path.read_bytes()  # (enhance chunks: the driver's own files)
        if addressed and hashlib.sha256(data).hexdigest()[:16] != digest:
            raise SourceRejected(f"{path} changed since the run read it (its workflow was compiled for sha256 "
                                 f"{digest}...); nothing was uploaded: rerun to render the new image")
        resp = self._request(
            "POST", "/upload/image",
            files={"image": (name or path.name, data, "application/octet-stream")},
            data={"subfolder": subfolder, "type": "input", "overwrite": "true" if overwrite else "false"},
        )
        if resp.status_code != 200:
            raise DriverError(f"upload of {path} to {self.url} failed: HTTP {resp.status_code} {resp.text[:200]}")
        info = resp.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    @staticmethod
    def output_files(entry: dict) -> list[dict]:
        """Every file reference (``filename``/``subfolder``/``type``) in a history entry's
        outputs, whatever UI key the node used (``images``, ``gifs``...), with its node id.
        A file a node lists under several keys (``AP_SaveChunk``: ``chunks`` and ``images``)
        is given once, under the first."""
        refs, seen = [], set()
        for node_id, ui in (entry.get("outputs") or {}).items():
            for key, values in ui.items():
                if not isinstance(values, list):
                    continue
                for v in values:
                    if isinstance(v, dict) and {"filename", "type"} <= v.keys():
                        same = (node_id, v["filename"], v.get("subfolder", ""), v["type"])
                        if same not in seen:
                            seen.add(same)
                            refs.append({**v, "node_id": node_id, "ui_key": key})
        return refs

    def download(self, ref: dict, dest: str | os.PathLike, chunk: int = 1 << 20) -> Path:
        """Stream one output file (a ref from :meth:`output_files`) to ``dest`` atomically."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        params = {"filename": ref["filename"], "subfolder": ref.get("subfolder", ""), "type": ref.get("type", "output")}
        resp = self._request("GET", "/view", params=params, stream=True)
        if resp.status_code != 200:
            raise OutputMissing(f"/view {params} on {self.url}: HTTP {resp.status_code}")
        return atomic_write_chunks(dest, resp.iter_content(chunk))

    # ------------------------------------------------------------------ prompts
    def queue_prompt(self, prompt: dict, prompt_id: str | None = None, extra_data: dict | None = None) -> str:
        """Submit an API-format graph; returns its prompt id. Raises PromptRejected on
        HTTP 400 and on a 200 whose ``node_errors`` is not empty."""
        prompt_id = prompt_id or uuid.uuid4().hex
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        resp = self._request("POST", "/prompt", json=body)
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code == 200 and not data.get("node_errors"):
            return data.get("prompt_id", prompt_id)
        error = data.get("error") or {}
        node_errors = data.get("node_errors") or {}
        exc = PromptRejected("", error=error, node_errors=node_errors)
        details = f": {error['details']}" if error.get("details") else ""
        lines = [f"{error.get('message', f'HTTP {resp.status_code}')}" + details]
        for e in exc.flat_errors():
            title = (prompt.get(e["node_id"], {}).get("_meta") or {}).get("title")
            where = f"node {e['node_id']} ({e['class_type']}{', ' + repr(title) if title else ''})"
            lines.append(f"{where}: {e['message']}: {e['details']}")
        raise PromptRejected("; ".join(lines), error=error, node_errors=node_errors)

    def run(self, prompt: dict, *, prompt_id: str | None = None, timeout: float = 600.0,
            on_event: EventCallback | None = None, extra_data: dict | None = None) -> dict:
        """Submit ``prompt``, follow it to the end and return its history entry.

        Raises PromptRejected, ExecutionFailed / Interrupted, or LostContact when the
        server stops answering before the prompt is known to be finished."""
        prompt_id = prompt_id or uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        ws = self._open_ws()
        try:
            self.queue_prompt(prompt, prompt_id, extra_data)
            if ws is not None:
                self._follow(ws, prompt_id, deadline, on_event)
        finally:
            if ws is not None:
                ws.close()
        return self.wait_for(prompt_id, deadline=deadline)

    def wait_for(self, prompt_id: str, *, deadline: float | None = None, timeout: float = 600.0,
                 interval: float = 0.25) -> dict:
        """Poll ``/history`` until ``prompt_id`` is finished; raise on failure."""
        deadline = deadline or time.monotonic() + timeout
        misses = 0
        while True:
            try:
                entry = self.history(prompt_id)
                misses = 0
            except (ServerUnreachable, LostContact):
                misses += 1
                entry = None
                if misses >= 20:
                    raise LostContact(f"server {self.url} stopped answering while {prompt_id} was in flight") from None
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                return self.check_entry(prompt_id, entry)
            if time.monotonic() > deadline:
                raise LostContact(f"prompt {prompt_id} on {self.url} not finished before the deadline")
            time.sleep(interval)

    @staticmethod
    def check_entry(prompt_id: str, entry: dict) -> dict:
        """Return a successful history entry, or raise the failure it records."""
        status = entry.get("status") or {}
        if status.get("status_str") == "success":
            return entry
        for event, data in status.get("messages", []):
            if event == "execution_error":
                raise ExecutionFailed(
                    f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {str(data.get('exception_message', '')).strip()}",
                    prompt_id=prompt_id, node_id=data.get("node_id"), node_type=data.get("node_type"),
                    exception_type=data.get("exception_type"), exception_message=data.get("exception_message", ""))
            if event == "execution_interrupted":
                raise Interrupted(f"prompt {prompt_id} was interrupted at node {data.get('node_id')} "
                                  f"({data.get('node_type')})",
                                  prompt_id=prompt_id, node_id=data.get("node_id"), node_type=data.get("node_type"))
        raise ExecutionFailed(f"prompt {prompt_id} ended with status {status.get('status_str')!r}", prompt_id=prompt_id)

    # ------------------------------------------------------------------ websocket
    def _open_ws(self):
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        try:
            # skip_utf8_validation: websocket-client's pure-Python UTF-8 check cost ~20 ms per
            # job in bench_driver_overhead; the events are JSON that json.loads checks anyway
            return websocket.create_connection(f"{ws_url}/ws?clientId={self.client_id}", timeout=self.request_timeout,
                                               skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as exc:
            log.warning("websocket to %s unavailable (%s); following by polling /history", self.url, exc)
            return None

    def events(self, ws, deadline: float) -> Iterator[tuple[str, dict]]:
        """Yield ``(type, data)`` JSON events until the deadline; binary preview frames are skipped."""
        while time.monotonic() < deadline:
            ws.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(msg, (bytes, bytearray)):
                continue
            try:
                data = json.loads(msg)
            except ValueError:
                continue
            yield data.get("type", ""), data.get("data") or {}

    def _follow(self, ws, prompt_id: str, deadline: float, on_event: EventCallback | None) -> None:
        try:
            for kind, data in self.events(ws, deadline):
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if on_event is not None:
                    on_event(kind, data)
                if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    return
        except (OSError, websocket.WebSocketException) as exc:
            log.warning("websocket to %s dropped (%s); falling back to polling /history", self.url, exc)
