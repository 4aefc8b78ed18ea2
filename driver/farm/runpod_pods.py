"""RunPod pods started, watched and stopped by the driver (``--farm runpod --pods N``,
``farm up / status / down``).

* Pods are named ``<prefix>-<NN>``; the prefix names the run, so ``farm down`` finds
  pods a crashed run left behind. Every pod id is journalled in the run folder the
  moment RunPod returns it, before anything else can fail. A creation cut short (Ctrl-C
  while the request was in flight) is looked up by the pod's name when the fleet stops.
* A pod is ready when RunPod reports it ``RUNNING`` with its ports mapped and its
  ComfyUI answers ``/system_stats`` at its URL: the proxy URL template
  ``https://{pod_id}-8188.proxy.runpod.net``, or ``http://{ip}:{port}`` (public IP and
  the port mapped to 8188). A pod not ready by its deadline is stopped and left out; the
  run goes on with the others, or fails with PodNotReady when none is ready.
* :meth:`PodFleet.down` stops (or, with ``terminate``, terminates) every pod the fleet
  started. The fleet is a context manager and calls it on success, failure, Ctrl-C and
  SIGTERM. A failed stop is re-read with ``get_pod`` before it is retried (the action
  may have happened), and what could not be stopped is named in the error.
* ``max_cost_usd``: spend is accrued from each pod's reported ``costPerHr`` since it
  was created; :meth:`check_budget` (run with the pool's health checks) stops the run
  while the spend plus one more minute at the current burn rate is still under budget."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from driver.errors import ConfigError
from driver.files import atomic_write_json, now

from .errors import BudgetExceeded, FarmError, GpuUnavailable, PodNotReady, RunPodAuthError
from .runpod_api import PodSpec, RunPodApi

log = logging.getLogger(__name__)

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


class PodFleet:
    def __init__(self, api: RunPodApi, *, prefix: str, spec: PodSpec, url_template: str = PROXY_TEMPLATE,
                 ready_timeout_s: float = 1200.0, terminate: bool = False, max_cost_usd: float | None = None,
                 journal: Path | None = None, poll_s: float = 5.0, budget_lookahead_s: float = 60.0):
        self.api, self.prefix, self.spec = api, prefix, spec
        self.url_template, self.ready_timeout_s = url_template, ready_timeout_s
        self.terminate, self.max_cost_usd = terminate, max_cost_usd
        self.journal, self.poll_s, self.budget_lookahead_s = journal, poll_s, budget_lookahead_s
        if not spec.ports:
            spec.ports = f"{COMFY_PORT}/tcp" if "{port}" in url_template else f"{COMFY_PORT}/http"
        self.pods: dict[str, PodRecord] = {}
        self._lock = threading.Lock()
        self._http = requests.Session()
        self._old_sigterm: Any = None
        self._creating: str | None = None  # name of a pod whose creation did not return

    # ------------------------------------------------------------------ up
    def up(self, n: int) -> list[str]:
        """Create ``n`` pods and wait until their ComfyUI answers; returns their URLs."""
        if n < 1:
            raise FarmError(f"--pods must be >= 1, got {n}")
        info = self.api.gpu(self.spec.gpu_type)
        log.info("renting %d x %s (%s cloud), image %s", n, info.get("displayName", self.spec.gpu_type),
                 self.spec.cloud_type, self.spec.image or f"template {self.spec.template_id}")
        for i in range(1, n + 1):
            name = f"{self.prefix}-{i:02d}"
            # Until its id is recorded, a pod RunPod may already have created (Ctrl-C or a
            # network error while the request was in flight) is known only by its name.
            self._creating = name
            try:
                pod = self.api.create_pod(name, self.spec)
            except GpuUnavailable as exc:
                self._creating = None  # refused: nothing was created
                if not self.pods:
                    raise
                log.warning("only %d of %d pods could be rented: %s", len(self.pods), n, exc)
                break
            except (RunPodAuthError, ConfigError):
                self._creating = None  # refused before anything was created
                raise
            with self._lock:
                self.pods[pod["id"]] = PodRecord(pod["id"], name, now(), started=time.monotonic())
            self._creating = None
            self._save()
            log.info("pod %s (%s) created", pod["id"], name)
        return self._wait_ready()

    def _wait_ready(self) -> list[str]:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = set(self.pods)
        while waiting:
            for pod_id in sorted(waiting):
                rec = self.pods[pod_id]
                pod = self.api.pod(pod_id)
                if pod and pod.get("costPerHr") is not None:
                    rec.cost_per_hr = float(pod["costPerHr"])
                    rec.gpu = (pod.get("machine") or {}).get("gpuDisplayName") or rec.gpu
                url = pod_url(pod, self.url_template) if pod and pod.get("desiredStatus") == "RUNNING" else None
                if url and self._comfy_answers(url):
                    rec.url, rec.state, rec.ready_s = url, "ready", time.monotonic() - rec.started
                    waiting.discard(pod_id)
                    log.info("pod %s ready at %s after %.0f s ($%.3f/h)", pod_id, url, rec.ready_s, rec.cost_per_hr)
            self.check_budget()
            self._save()
            if waiting and time.monotonic() >= deadline:
                for pod_id in sorted(waiting):
                    log.error("pod %s: ComfyUI did not answer within %.0f s; stopping it", pod_id, self.ready_timeout_s)
                    self.pods[pod_id].state = "not_ready"
                    self._stop_one(self.pods[pod_id])
                break
            if waiting:
                time.sleep(self.poll_s)
        ready = [r.url for r in self.pods.values() if r.state == "ready" and r.url]
        if not ready:
            raise PodNotReady(f"none of the {len(self.pods)} pod(s) had ComfyUI answering within "
                              f"{self.ready_timeout_s:.0f} s (image {self.spec.image}); they were stopped")
        return ready

    def _comfy_answers(self, url: str) -> bool:
        try:
            return self._http.get(f"{url}/system_stats", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    # ------------------------------------------------------------------ cost
    def spent_usd(self, at: float | None = None) -> float:
        at = time.monotonic() if at is None else at
        return sum(r.cost_per_hr * r.hours(at) for r in self.pods.values())

    def burn_usd_per_hr(self) -> float:
        return sum(r.cost_per_hr for r in self.pods.values() if r.stopped is None)

    def check_budget(self) -> None:
        if self.max_cost_usd is None:
            return
        spent = self.spent_usd()
        projected = spent + self.burn_usd_per_hr() * self.budget_lookahead_s / 3600.0
        if projected >= self.max_cost_usd:
            raise BudgetExceeded(f"--max-cost-usd {self.max_cost_usd:.2f}: ${spent:.2f} spent and "
                                 f"${self.burn_usd_per_hr():.2f}/h running; stopping the pods before the budget "
                                 "is exceeded (finished shots are kept; rerun to resume)")

    def summary(self) -> dict:
        at = time.monotonic()
        pods: list[dict[str, Any]] = [{"id": r.id, "name": r.name, "gpu": r.gpu, "state": r.state, "ready_s": r.ready_s,
                 "gpu_s": round(r.hours(at) * 3600.0, 1), "cost_per_hr": r.cost_per_hr,
                 "cost_usd": round(r.cost_per_hr * r.hours(at), 4)} for r in self.pods.values()]
        return {"pods": pods, "gpu_s": round(sum(p["gpu_s"] for p in pods), 1),
                "cost_usd": round(sum(p["cost_usd"] for p in pods), 4)}

    # ------------------------------------------------------------------ down
    def down(self) -> None:
        """Stop (or terminate) every pod this fleet started; raise FarmError naming any
        pod that could not be stopped."""
        unsure = self._adopt_unconfirmed()
        failed = [r for r in list(self.pods.values()) if r.stopped is None and not self._stop_one(r)]
        self._save()
        s = self.summary()
        if self.pods:
            log.info("pods: %d, GPU time %.0f s, cost $%.3f (from the pods' reported hourly prices)",
                     len(self.pods), s["gpu_s"], s["cost_usd"])
        if failed or unsure:
            raise FarmError(f"could not {'terminate' if self.terminate else 'stop'} pod(s) "
                            f"{', '.join([r.id for r in failed] + unsure)}: stop them in the RunPod console, or run "
                            f"`python -m driver farm down --prefix {self.prefix}`")

    def _adopt_unconfirmed(self) -> list[str]:
        """A creation that did not return (interrupted, or its answer lost) may have
        left a pod billing: look it up by name and record it so it is stopped too.
        Returns the name when the lookup itself failed (the pod may exist)."""
        name, self._creating = self._creating, None
        if name is None:
            return []
        try:
            found = [p for p in self.api.pods() if p.get("name") == name and p.get("id") not in self.pods]
        except FarmError as exc:
            log.error("pod %s: its creation was interrupted and RunPod could not be asked whether it exists (%s)",
                      name, exc)
            return [f"{name} (creation interrupted; may exist)"]
        for p in found:
            if p.get("desiredStatus") in GONE:  # not the pod just created (an older one of the same name)
                continue
            log.warning("pod %s (%s): created while the run was being stopped; stopping it", p["id"], name)
            with self._lock:
                self.pods[p["id"]] = PodRecord(p["id"], name, now(), started=time.monotonic(),
                                               cost_per_hr=float(p.get("costPerHr") or 0.0))
        return []

    def _stop_one(self, rec: PodRecord, tries: int = 3) -> bool:
        action = self.api.terminate if self.terminate else self.api.stop
        for attempt in range(1, tries + 1):
            try:
                action(rec.id)
                break
            except FarmError as exc:
                log.warning("pod %s: %s failed (%s); checking its state", rec.id, action.__name__, exc)
                with contextlib.suppress(FarmError):
                    pod = self.api.pod(rec.id)
                    if pod is None or pod.get("desiredStatus") in GONE:
                        break
                if attempt == tries:
                    rec.state = "stop_failed"
                    return False
                time.sleep(min(5.0, self.poll_s))
        rec.stopped = time.monotonic()
        if rec.state != "not_ready":  # a pod stopped for never answering keeps saying so
            rec.state = "stopped"
        log.info("pod %s %s", rec.id, "terminated" if self.terminate else "stopped")
        return True

    def _save(self) -> None:
        if self.journal is None:
            return
        with self._lock:
            doc = {"prefix": self.prefix, "terminate": self.terminate,
                   "pods": [{k: v for k, v in asdict(r).items() if k not in ("started", "stopped")}
                            for r in self.pods.values()]}
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.journal, doc)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> PodFleet:
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.down()
        except FarmError:
            if exc_type is None:
                raise
            log.exception("while stopping pods after %s", exc_type.__name__)
        finally:
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


# ---------------------------------------------------------------------- orphans
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
