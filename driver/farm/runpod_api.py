"""The only module that talks to RunPod's pod API, through the official ``runpod`` SDK
(optional extra: ``pip install ".[runpod]"``).

It fixes what the SDK leaves to its callers (runpod.md §1): the SDK does not read
``RUNPOD_API_KEY`` (the key is set on ``runpod.api_key``); the API base URL comes from
``RUNPOD_API_BASE_URL`` (set here when configured, e.g. to a local stand-in);
``create_pod`` returns a dict; SDK errors become typed farm errors whose messages are
redacted; the mutation is built by string interpolation without escaping, so values
with quotes, backslashes or newlines are refused before they are sent."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from driver.errors import ConfigError

from .errors import GpuUnavailable, RunPodApiError, RunPodAuthError
from .images import POD_IMAGE
from .redact import add_secret, redact

log = logging.getLogger(__name__)

BASE_URL_ENV = "RUNPOD_API_BASE_URL"
_UNSAFE = re.compile(r'["\\\n\r]')
_NO_CAPACITY = ("no longer any instances available", "not enough free gpus", "no instances", "unavailable")


@dataclass
class PodSpec:
    """What to rent. ``ports`` is derived from the URL template when left empty."""

    gpu_type: str = "NVIDIA GeForce RTX 4090"
    image: str | None = POD_IMAGE   # None: the template's image
    template_id: str | None = None
    cloud_type: str = "SECURE"
    gpu_count: int = 1
    container_disk_gb: int = 50
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    network_volume_id: str | None = None
    data_center_id: str | None = None
    ports: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = []
        if self.cloud_type not in ("ALL", "COMMUNITY", "SECURE"):
            out.append(f"cloud type must be ALL, COMMUNITY or SECURE, got {self.cloud_type!r}")
        if not (self.image or self.template_id):
            out.append("give an image or a template")
        if self.gpu_count < 1:
            out.append(f"gpu count must be >= 1, got {self.gpu_count}")
        for label, value in [("gpu type", self.gpu_type), ("image", self.image), ("template", self.template_id),
                             ("network volume", self.network_volume_id), ("data center", self.data_center_id),
                             *[(f"env {k}", f"{k}{v}") for k, v in self.env.items()]]:
            if value and _UNSAFE.search(value):
                out.append(f"{label} contains a quote, backslash or newline, which the runpod SDK sends unescaped")
        return out


def _sdk():
    try:
        import runpod
    except ImportError:
        raise ConfigError("RunPod pods need the runpod SDK: pip install \".[runpod]\" (or pip install 'runpod>=1.12')"
                          ) from None
    return runpod


class RunPodApi:
    """Typed wrapper of the SDK's pod functions. Every error is a FarmError subclass
    with the key masked; the key itself is never logged."""

    def __init__(self, api_key: str | None, *, base_url: str | None = None):
        if not api_key:
            raise RunPodAuthError("no RunPod API key: set RUNPOD_API_KEY, or run `runpod config` to write "
                                  "~/.runpod/config.toml")
        add_secret(api_key)
        self._rp = _sdk()
        self._rp.api_key = api_key
        if base_url:
            os.environ[BASE_URL_ENV] = base_url.rstrip("/")

    def _call(self, what: str, fn, *args, **kw):
        err = self._rp.error
        try:
            return fn(*args, **kw)
        except err.AuthenticationError as exc:
            raise RunPodAuthError(redact(f"RunPod refused the API key ({what}): {exc}")) from None
        except err.QueryError as exc:
            text = redact(str(exc))
            if any(s in text.lower() for s in _NO_CAPACITY):
                raise GpuUnavailable(f"{what}: {text}") from None
            raise RunPodApiError(f"{what}: RunPod answered: {text}") from None
        except ValueError as exc:  # the SDK's get_gpu on an unknown type, its argument checks
            raise GpuUnavailable(redact(f"{what}: {exc}")) from None
        except Exception as exc:  # noqa: BLE001 - network errors, unexpected JSON: typed, redacted
            raise RunPodApiError(redact(f"{what}: {exc.__class__.__name__}: {exc}")) from None

    def gpu(self, gpu_type: str) -> dict:
        return self._call(f"GPU type {gpu_type!r}", self._rp.get_gpu, gpu_type)

    def create_pod(self, name: str, spec: PodSpec) -> dict:
        problems = spec.problems()
        if _UNSAFE.search(name):
            problems.append("pod name contains a quote, backslash or newline")
        if problems:
            raise ConfigError("pod settings rejected before sending: " + "; ".join(problems), problems=problems)
        pod = self._call(f"create pod {name}", self._rp.create_pod, name, spec.image or "", spec.gpu_type,
                         cloud_type=spec.cloud_type, gpu_count=spec.gpu_count,
                         container_disk_in_gb=spec.container_disk_gb, volume_in_gb=spec.volume_gb,
                         volume_mount_path=spec.volume_mount_path, ports=spec.ports or None,
                         env=spec.env or None, template_id=spec.template_id,
                         network_volume_id=spec.network_volume_id, data_center_id=spec.data_center_id,
                         support_public_ip=True, start_ssh=False)
        if not isinstance(pod, dict) or not pod.get("id"):
            raise GpuUnavailable(f"create pod {name}: RunPod returned no pod ({redact(pod)!s:.200})")
        return pod

    def pod(self, pod_id: str) -> dict | None:
        return self._call(f"pod {pod_id}", self._rp.get_pod, pod_id)

    def pods(self) -> list[dict]:
        return self._call("list pods", self._rp.get_pods) or []

    def stop(self, pod_id: str) -> None:
        self._call(f"stop pod {pod_id}", self._rp.stop_pod, pod_id)

    def terminate(self, pod_id: str) -> None:
        self._call(f"terminate pod {pod_id}", self._rp.terminate_pod, pod_id)
