"""What worker-comfyui (5.x) returns and does not return, as pure functions.

The worker's handler returns only the files a node reports under ``images`` (not
``temp`` ones), each as ``{"filename", "type": "base64" | "s3_url", "data"}`` with no
node id and no subfolder. So the driver maps files back to its output roles by the
save node's ``filename_prefix`` (unique per job, attempt and role), reads the gate
report from the ``AP_QualityReport`` summary card PNG (the report JSON in a PNG text
chunk, written by ``anime_pipeline.core.quality.card``), and refuses in preflight any
workflow that writes a declared output through a node whose files the worker would
drop (e.g. VHS_VideoCombine's ``gifs``)."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import PurePosixPath

log = logging.getLogger(__name__)

#: Core savers that report their file under ``images`` (SaveVideo/SaveWEBM via
#: ``ui.PreviewVideo``; comfyui.md §1.4, runpod.md §2.6).
RETURNED_SAVERS = frozenset({"SaveImage", "SaveVideo", "SaveWEBM", "SaveAnimatedWEBP", "SaveAnimatedPNG"})
#: Nodes whose result reaches the driver another way (the report rides on its card PNG).
REPORT_NODES = frozenset({"AP_QualityReport"})
#: RunPod refuses ``/run`` bodies over 10 MB; stay clear of it.
RUN_PAYLOAD_LIMIT = 9_500_000


def dropped_outputs(prompt: dict, outputs: dict[str, str]) -> list[str]:
    """Declared output nodes (id -> role) whose files worker-comfyui would not return."""
    bad = []
    for nid, role in sorted(outputs.items()):
        ctype = prompt[nid]["class_type"]
        if ctype not in RETURNED_SAVERS and ctype not in REPORT_NODES:
            title = (prompt[nid].get("_meta") or {}).get("title")
            label = f"{title!r} ({ctype})" if title else f"{nid} ({ctype})"
            bad.append(f"output {role!r} comes from node {label}, whose files worker-comfyui does not return "
                       f"(it returns only what a node reports under 'images': {', '.join(sorted(RETURNED_SAVERS))})")
    return bad


def b64_size(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def prefix_roles(prompt: dict, outputs: dict[str, str]) -> dict[str, str]:
    """Output file stem prefix (``<last part of filename_prefix>_``) -> role."""
    out = {}
    for nid, role in outputs.items():
        prefix = (prompt[nid].get("inputs") or {}).get("filename_prefix")
        if isinstance(prefix, str) and prefix:
            out[PurePosixPath(prefix).name + "_"] = role
    return out


def role_of(filename: str, prefixes: dict[str, str]) -> str | None:
    """The role whose prefix starts ``filename`` (longest match wins)."""
    best = None
    for prefix, role in prefixes.items():
        if filename.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, role)
    return best[1] if best else None


def decode_base64(data: str) -> bytes:
    if data.startswith("data:"):
        data = data.split(",", 1)[1]
    return base64.b64decode(data, validate=False)


def report_from_png(blob: bytes) -> dict | None:
    """The quality report in an ``AP_QualityReport`` summary card (its ``iTXt`` chunk,
    read by the pack's own ``read_card``), or None for any other file."""
    if not blob.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    from anime_pipeline.core.quality.card import read_card

    try:
        report = read_card(blob)
    except (OSError, ValueError) as exc:
        log.debug("PNG without a quality report: %s", exc)
        return None
    return report if isinstance(report, dict) else None


def error_text(error) -> str:
    """A serverless job's ``error``: a plain string, or a JSON string/dict of an uncaught
    exception (``error_type``, ``error_message``...). Returns the human message."""
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            return error
        error = parsed
    if isinstance(error, dict):
        return str(error.get("error_message") or error.get("message") or error.get("error") or json.dumps(error))
    return str(error)
