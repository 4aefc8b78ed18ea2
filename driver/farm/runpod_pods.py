"""RunPod pods started, watched and stopped by the driver (``--farm runpod --pods N``,
``farm up``; orphans: :mod:`.pod_orphans`).

* Pods are named ``<prefix>-<NN>`` (the prefix names the run) and journalled in the run
  folder the moment RunPod returns them. A creation without an answer (Ctrl-C, a network
  error, an HTML error page) is looked up by name: found, it is used and stopped like
  the others. A failed ``get_pod`` while pods boot is asked again until the deadline.
* A pod is ready when RunPod reports it ``RUNNING`` with its ports mapped and its
  ComfyUI answers ``/system_stats`` at its URL (``PROXY_TEMPLATE``, or ``TCP_TEMPLATE``:
  public IP and the port mapped to 8188). A pod not ready by its deadline is stopped and
  left out; with none ready the run fails with PodNotReady.
* :meth:`PodFleet.down` stops (or terminates) every pod the fleet started, on success,
  failure, Ctrl-C and SIGTERM (the fleet is a context manager). A failed stop is re-read
  with ``get_pod`` before it is retried, and what could not be stopped is named.
* ``max_cost_usd``: spend is accrued from each pod's ``costPerHr`` since creation;
  :meth:`check_budget` stops the run while spend plus a minute more is under budget."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from driver.errors import ConfigError
from driver.files import atomic_write_json, now

from .errors import (
    BudgetExceeded,
    FarmError,
    GpuUnavailable,
    PodNotReady,
    RunPodApiError,
    RunPodAuthError,
    RunPodTransient,
)
from .pod_record import COMFY_PORT, GONE, PROXY_TEMPLATE, TCP_TEMPLATE, PodRecord, pod_url  # noqa: F401 (re-exported)
from .runpod_api import PodSpec, RunPodApi

log = logging.getLogger(__name__)

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
        self._unsure: set[str] = set()  # names of pods whose creation had no answer, not found yet

    # ------------------------------------------------------------------ up
    def up(self, n: int) -> list[str]:
        """Create ``n`` pods and wait until their ComfyUI answers; returns their URLs."""
        if n < 1:
            raise FarmError(f"--pods must be >= 1, got {n}")
        problems = self.spec.problems()
        if problems:  # before any API call: nothing is rented with settings RunPod would accept and never run
            raise ConfigError("pod settings: " + "; ".join(problems), problems=problems)
        info = self.api.gpu(self.spec.gpu_type)
        log.info("renting %d x %s (%s cloud), image %s", n, info.get("displayName", self.spec.gpu_type),
                 self.spec.cloud_type, self.spec.image or f"template {self.spec.template_id}")
        for i in range(1, n + 1):
            if not self._create(f"{self.prefix}-{i:02d}", n):
                break
        return self._wait_ready()

    def _create(self, name: str, n: int, tries: int = 2) -> bool:
        """One pod (False: no more can be rented). Without an answer its name stays in
        ``_unsure``; asked by name and not found, it is created again."""
        for attempt in range(1, tries + 1):
            self._unsure.add(name)
            try:
                pod = self.api.create_pod(name, self.spec)
            except RunPodTransient as exc:
                log.warning("pod %s: %s; looking for it by name", name, exc)
                missing = self._resolve_unsure()
                if missing is None or name not in missing or attempt == tries:
                    return True
                continue
            except GpuUnavailable as exc:
                self._unsure.discard(name)  # refused: nothing was created
                if not self.pods and not self._unsure:
                    raise
                log.warning("only %d of %d pods could be rented: %s", len(self.pods), n, exc)
                return False
            except (RunPodAuthError, ConfigError):
                self._unsure.discard(name)  # refused before anything was created
                raise
            self._unsure.discard(name)
            self._record(pod["id"], name)
            log.info("pod %s (%s) created", pod["id"], name)
            return True
        return True

    def _record(self, pod_id: str, name: str, cost_per_hr: float = 0.0) -> None:
        with self._lock:
            self.pods[pod_id] = PodRecord(pod_id, name, now(), started=time.monotonic(), cost_per_hr=cost_per_hr)
        self._save()

    def _resolve_unsure(self) -> list[str] | None:
        """Adopt the ``_unsure`` pods that exist; the names still unsure, None if RunPod could not be asked."""
        if not self._unsure:
            return []
        try:
            listed = self.api.pods()
        except FarmError as exc:
            log.warning("pods %s: could not ask RunPod whether they exist (%s)", sorted(self._unsure), exc)
            return None
        for p in listed:
            name = p.get("name")
            if name in self._unsure and p.get("id") not in self.pods and p.get("desiredStatus") not in GONE:
                log.warning("pod %s (%s): its creation was not confirmed, but it exists; adopting it", p["id"], name)
                self._record(p["id"], name, float(p.get("costPerHr") or 0.0))
                self._unsure.discard(name)
        return sorted(self._unsure)

    def _wait_ready(self) -> list[str]:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = {pid for pid, rec in self.pods.items() if rec.state == "created"}
        unlisted = bool(self._unsure)  # creations without an answer, to look up by name
        while waiting or unlisted:
            if unlisted:
                before = set(self.pods)
                unlisted = self._resolve_unsure() is None
                waiting |= set(self.pods) - before
            for pod_id in sorted(waiting):
                if self._poll(pod_id):
                    waiting.discard(pod_id)
            self.check_budget()
            self._save()
            if (waiting or unlisted) and time.monotonic() >= deadline:
                for pod_id in sorted(waiting):
                    log.error("pod %s: ComfyUI did not answer within %.0f s; stopping it", pod_id, self.ready_timeout_s)
                    self.pods[pod_id].state = "not_ready"
                    self._stop_one(self.pods[pod_id])
                break
            if waiting or unlisted:
                time.sleep(self.poll_s)
        ready = [r.url for r in self.pods.values() if r.state == "ready" and r.url]
        if not ready:
            raise PodNotReady(f"none of the {len(self.pods)} pod(s) had ComfyUI answering within "
                              f"{self.ready_timeout_s:.0f} s (image {self.spec.image}); they were stopped")
        return ready

    def _poll(self, pod_id: str) -> bool:
        """One readiness check; a failed ``get_pod`` is asked again next round, until the deadline."""
        rec = self.pods[pod_id]
        try:
            pod = self.api.pod(pod_id)
        except RunPodApiError as exc:
            log.warning("pod %s: %s; asking again until its deadline", pod_id, exc)
            return False
        if pod and pod.get("costPerHr") is not None:
            rec.cost_per_hr = float(pod["costPerHr"])
            rec.gpu = (pod.get("machine") or {}).get("gpuDisplayName") or rec.gpu
        url = pod_url(pod, self.url_template) if pod and pod.get("desiredStatus") == "RUNNING" else None
        if not (url and self._comfy_answers(url)):
            return False
        rec.url, rec.state, rec.ready_s = url, "ready", time.monotonic() - rec.started
        log.info("pod %s ready at %s after %.0f s ($%.3f/h)", pod_id, url, rec.ready_s, rec.cost_per_hr)
        return True

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
        """Creations that did not return (interrupted, or their answer lost) may have left
        pods billing: look them up by name and record them so they are stopped too.
        Returns the names RunPod could not be asked about (they may exist)."""
        unsure = self._resolve_unsure()
        names, self._unsure = sorted(self._unsure), set()
        if unsure is None:
            return [f"{name} (creation not confirmed; may exist)" for name in names]
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
