"""Members of the server pool (a ComfyUI server or a serverless endpoint, with its
executor, health probe and slots), the leases the pool hands out on them, and what a
member's preflight found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driver.errors import DriverError, PreflightFailed
from driver.render.executor import Executor

from .errors import PackMissing
from .images import POD_IMAGE, SERVERLESS_IMAGE

Probe = Callable[[], Any]          # raises when the member does not answer
Check = Callable[["Member"], None]  # raises PreflightFailed (or another DriverError) when it cannot serve


@dataclass
class Member:
    """One backend of the pool. ``executor`` runs attempts on it (a
    :class:`driver.render.executor.Executor`); ``probe`` is its health check."""

    name: str
    executor: Executor
    probe: Probe
    capacity: int = 1
    kind: str = "comfyui"   # comfyui | serverless
    uploaded: set = field(default_factory=set)  # input names already on it
    jobs: int = 0
    busy_s: float = 0.0
    lost: int = 0

    def image_hint(self) -> str:
        image = SERVERLESS_IMAGE if self.kind == "serverless" else POD_IMAGE
        return f"use the {image} image (docker/README.md), which carries the anime_pipeline pack"


@dataclass
class Lease:
    member: Member
    key: int
    since: float



def check_error(check: Check, member: Member) -> DriverError | None:
    """What ``check(member)`` raised (None: the member can serve); a member without the
    pack gets a PackMissing naming the image to use."""
    try:
        check(member)
        return None
    except DriverError as exc:
        return _with_image_hint(exc, member)
    except Exception as exc:  # noqa: BLE001 - a broken server must not stop the preflight of the others
        return DriverError(f"preflight raised {exc.__class__.__name__}: {exc}")


def _with_image_hint(exc: DriverError, member: Member) -> DriverError:
    """A member without the pack gets a PackMissing naming the image to use."""
    if isinstance(exc, PackMissing) or (isinstance(exc, PreflightFailed) and exc.lacks_pack()):
        problems = [*exc.problems, member.image_hint()]
        return PackMissing(f"{member.name} lacks the anime_pipeline pack (or a node it needs): "
                           f"{member.image_hint()}", problems=problems)
    return exc
