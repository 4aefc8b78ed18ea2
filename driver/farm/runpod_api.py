"""The only module that talks to RunPod's pod API, through the official ``runpod`` SDK
(optional extra: ``pip install ".[runpod]"``).

It fixes what the SDK leaves to its callers (runpod.md §1): the SDK does not read
``RUNPOD_API_KEY`` (the key is set on ``runpod.api_key``); the API base URL comes from
``RUNPOD_API_BASE_URL`` (set here when configured, e.g. to a local stand-in);
``create_pod`` returns a dict; SDK errors become typed farm errors whose messages are
redacted; the mutation is built by string interpolation without escaping, so values
with quotes, backslashes or newlines are refused before they are sent."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field

import requests

from driver.errors import ConfigError

from .errors import GpuUnavailable, RunPodApiError, RunPodAuthError, RunPodTransient
from .images import POD_IMAGE_NAME
from .redact import add_secret, redact

log = logging.getLogger(__name__)

BASE_URL_ENV = "RUNPOD_API_BASE_URL"
_UNSAFE = re.compile(r'["\\\n\r]')
_NO_CAPACITY = ("no longer any instances available", "not enough free gpus", "no instances", "unavailable")
#: RunPod's generic GraphQL error (runpod-python #150, #239): whatever was asked may have happened.
_TRANSIENT = ("something went wrong", "please try again later", "internal server error", "timed out")


#: Where a default pod image may be configured (there is no built-in one: docker/README.md).
POD_IMAGE_ENV = "ANIME_PIPELINE_POD_IMAGE"
NO_IMAGE = (f"RunPod pods need an image with ComfyUI and this pack: pass --image REGISTRY/{POD_IMAGE_NAME} (built "
            f"from docker/pod/Dockerfile, see docker/README.md) or --template ID, or set {POD_IMAGE_ENV}")
_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._/:@-]*", re.IGNORECASE)


@dataclass
class PodSpec:
    """What to rent. ``ports`` is derived from the URL template when left empty."""

    gpu_type: str = "NVIDIA GeForce RTX 4090"
    image: str | None = None  # None: $ANIME_PIPELINE_POD_IMAGE; no default image otherwise
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

    def __post_init__(self):
        if self.image is None and not self.template_id:
            self.image = os.environ.get(POD_IMAGE_ENV, "").strip() or None

    def problems(self) -> list[str]:
        out = []
        if self.cloud_type not in ("ALL", "COMMUNITY", "SECURE"):
            out.append(f"cloud type must be ALL, COMMUNITY or SECURE, got {self.cloud_type!r}")
        if not (self.image or self.template_id):
            out.append(NO_IMAGE)
        elif self.image and not _IMAGE_NAME.fullmatch(self.image):
            out.append(f"image {self.image!r} is not a pullable image name (a placeholder?); " + NO_IMAGE)
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

    def __init__(self, api_key: str | None, *, base_url: str | None = None, read_tries: int = 3,
                 read_backoff_s: float = 1.0):
        if not api_key:
            raise RunPodAuthError("no RunPod API key: set RUNPOD_API_KEY, or run `runpod config` to write "
                                  "~/.runpod/config.toml")
        add_secret(api_key)
        self.read_tries, self.read_backoff_s = max(1, read_tries), read_backoff_s
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
            if any(s in text.lower() for s in _TRANSIENT):
                raise RunPodTransient(f"{what}: RunPod answered: {text} (outcome unknown)") from None
            raise RunPodApiError(f"{what}: RunPod answered: {text}") from None
        except (json.JSONDecodeError, requests.exceptions.JSONDecodeError) as exc:
            # The SDK calls response.json() on every answer: an HTML 5xx page from RunPod's edge
            # lands here (a ValueError, which must not read as "no such GPU").
            raise RunPodTransient(redact(f"{what}: RunPod's answer was not JSON (an HTTP error page?); outcome "
                                         f"unknown ({exc})")) from None
        except requests.RequestException as exc:
            raise RunPodTransient(redact(f"{what}: {exc.__class__.__name__}: {exc}; outcome unknown")) from None
        except ValueError as exc:  # the SDK's get_gpu on an unknown type, its argument checks
            raise GpuUnavailable(redact(f"{what}: {exc}")) from None
        except Exception as exc:  # noqa: BLE001 - unexpected JSON (e.g. "data": null): typed, redacted
            raise RunPodTransient(redact(f"{what}: {exc.__class__.__name__}: {exc}; outcome unknown")) from None

    def _read(self, what: str, fn, *args):
        """A query (no side effect): retried on transient failures, ``read_tries`` times in all."""
        for attempt in range(1, self.read_tries + 1):
            try:
                return self._call(what, fn, *args)
            except RunPodTransient as exc:
                if attempt == self.read_tries:
                    raise
                log.warning("%s (try %d of %d); asking again", exc, attempt, self.read_tries)
                time.sleep(self.read_backoff_s * attempt)
        raise AssertionError("unreachable")

    def gpu(self, gpu_type: str) -> dict:
        return self._read(f"GPU type {gpu_type!r}", self._rp.get_gpu, gpu_type)

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
        return self._read(f"pod {pod_id}", self._rp.get_pod, pod_id)

    def pods(self) -> list[dict]:
        return self._read("list pods", self._rp.get_pods) or []

    def stop(self, pod_id: str) -> None:
        self._call(f"stop pod {pod_id}", self._rp.stop_pod, pod_id)

    def terminate(self, pod_id: str) -> None:
        self._call(f"terminate pod {pod_id}", self._rp.terminate_pod, pod_id)
