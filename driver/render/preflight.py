"""Preflight: before anything is queued, check every compiled workflow of the plan
against what the server offers (``/object_info``, ``/models``) and list every problem
at once, each with its shot, template and node title.

Checked: every node type exists (a missing ``AP_*`` type means the pack is not
installed there); every required input is present; every constant of a V1 combo input
is one of the server's choices (model and LoRA file names, samplers...); the LoRA files
the character registry names for the plan's shots are in ``/models/loras``; WAN lengths
are ``4n+1``. The storyboard was validated before planning."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from anime_pipeline.core.segments import is_wan_length
from driver.errors import PreflightFailed

from .attempt import Attempt
from .workflow import is_link, title_of

log = logging.getLogger(__name__)

WAN_LENGTH_NODES = {"WanFirstLastFrameToVideo", "WanImageToVideo", "WanFunInpaintToVideo"}
PACK_PREFIX = "AP_"


def combo_choices(spec) -> list | None:
    """The allowed values of a combo input spec (V1 list or V3 ``COMBO`` options), else None."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(kind, list):
        return kind
    if kind == "COMBO" and isinstance(opts.get("options"), list):
        return opts["options"]
    return None


def _where(c: Attempt, nid: str) -> str:
    node = c.prompt[nid]
    title = title_of(node)
    label = f"node {title!r} ({node['class_type']})" if title else f"node {nid} ({node['class_type']})"
    return f"{c.job.shot} {c.job.id}: {label}"


def workflow_problems(c: Attempt, object_info: dict) -> list[str]:
    problems = []
    for nid, node in c.prompt.items():
        ctype = node["class_type"]
        info = object_info.get(ctype)
        if info is None:
            hint = (" (the anime_pipeline pack is not installed on this server, or failed to import: check its log)"
                    if ctype.startswith(PACK_PREFIX) else " (a custom node pack is missing on this server)")
            problems.append(f"{_where(c, nid)}: node type {ctype} does not exist{hint}")
            continue
        required = (info.get("input") or {}).get("required") or {}
        optional = (info.get("input") or {}).get("optional") or {}
        for name in required:
            if name not in node["inputs"]:
                problems.append(f"{_where(c, nid)}: required input {name!r} is missing (template made for "
                                "another version of the node?)")
        for name, value in node["inputs"].items():
            spec = required.get(name, optional.get(name))
            if spec is None or is_link(value):
                continue
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            choices = combo_choices(spec)
            if choices is None or opts.get("image_upload") or opts.get("video_upload"):
                continue
            if value not in choices:
                shown = ", ".join(map(str, choices[:8])) + (" ..." if len(choices) > 8 else "") if choices else "none"
                problems.append(f"{_where(c, nid)}: {name} {value!r} is not on the server (it has: {shown})")
        if ctype in WAN_LENGTH_NODES and not is_link(node["inputs"].get("length")):
            n = node["inputs"].get("length")
            if not is_wan_length(n):
                problems.append(f"{_where(c, nid)}: length {n} is not 4n+1; WAN would drop frames and the end keyframe")
    return problems


def registry_problems(lora_files: Iterable[tuple[str, str]], server_loras: list[str]) -> list[str]:
    """``lora_files``: (shot id, file) pairs from the character registry."""
    have = set(server_loras)
    return [f"{sid}: character LoRA {f!r} (from the registry) is not in the server's loras folder"
            for sid, f in dict.fromkeys(lora_files) if f not in have]


def missing_types(compiled: Sequence[Attempt], object_info: dict) -> list[str]:
    """The node types the plan uses that the server does not have, sorted."""
    return sorted({n["class_type"] for c in compiled for n in c.prompt.values()} - set(object_info))


def check(compiled: Sequence[Attempt], object_info: dict, *, lora_files: Iterable[tuple[str, str]] = (),
          server_loras: list[str] | None = None, server: str = "") -> None:
    """Raise PreflightFailed listing every problem (and the missing node types, as data);
    return quietly when there is none."""
    problems: list[str] = []
    for c in compiled:
        problems += workflow_problems(c, object_info)
    if server_loras is not None:
        problems += registry_problems(lora_files, server_loras)
    problems = list(dict.fromkeys(problems))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PreflightFailed(f"preflight against {server or 'the server'} found {len(problems)} problem(s); "
                              f"nothing was queued:\n{listing}", problems=problems,
                              missing_types=missing_types(compiled, object_info))
    log.info("preflight: %d workflow(s) match %s", len(compiled), server or "the server")
