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
import re
from pathlib import PurePosixPath

log = logging.getLogger(__name__)

#: Savers that report their file under ``images`` (SaveVideo/SaveWEBM via ``ui.PreviewVideo``;
#: comfyui.md §1.4, runpod.md §2.6; the pack's AP_SaveChunk lists its chunk there too).
RETURNED_SAVERS = frozenset({"SaveImage", "SaveVideo", "SaveWEBM", "SaveAnimatedWEBP", "SaveAnimatedPNG",
                             "AP_SaveChunk"})
#: Nodes whose result reaches the driver another way (the report rides on its card PNG).
REPORT_NODES = frozenset({"AP_QualityReport"})
#: RunPod refuses ``/run`` bodies over 10 MB; stay clear of it.
RUN_PAYLOAD_LIMIT = 9_500_000
#: Results over about 20 MB come back ``COMPLETED`` without ``output`` unless the endpoint
#: has an S3 bucket (``BUCKET_ENDPOINT_URL``; runpod.md section 1.7, worker-comfyui #57/#129).
RESULT_LIMIT = 19_000_000


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


# ---------------------------------------------------------------------- failures
# Where worker-comfyui 5.8.5 (handler.py) and the runpod SDK 1.12.0 (serverless/modules/
# rp_job.py: run_job pops the handler's "error" into the job's error, the rest is its
# output) put what went wrong:
#   {"error": text}                          -> FAILED, error = text (validation: the text ends
#                                               ". Raw response: <ComfyUI's 400 JSON>")
#   {"error": "Job processing failed", "details": [...]}
#                                            -> FAILED, error = that line, output.details = texts
#   {"images": [...], "errors": [...]}       -> COMPLETED, output.errors = texts
# Execution errors appear as "Workflow execution error: Node Type: T, Node ID: N, Message: M".
_NODE_ID = re.compile(r"Node ID '#([^']+)'")
#: ComfyUI's error types that name a node type it does not have: ``missing_node_type`` (ComfyUI
#: since 2026-01-31, ``extra_info.class_type``); ``invalid_prompt`` naming a node (0.3.64: a node
#: type that does not exist, or a node without ``class_type``, which the driver never sends)
_MISSING_TYPES = ("missing_node_type", "invalid_prompt")


def failure_texts(status: dict) -> list[str]:
    """Every message a job carries: its ``error``, ``output.error``, ``output.details``
    and ``output.errors`` (the gate report and validation errors may be in any)."""
    raw = status.get("output")
    output: dict = raw if isinstance(raw, dict) else {}
    texts = [error_text(status["error"])] if status.get("error") else []
    if output.get("error"):
        texts.append(error_text(output["error"]))
    for key in ("details", "errors"):
        items = output.get(key) or []
        texts += [str(x) for x in (items if isinstance(items, list) else [items])]
    return texts


def comfy_answer(text: str) -> dict | None:
    """ComfyUI's 400 answer the worker appends to a validation error (``Raw response: {...}``)."""
    _, sep, tail = text.partition("Raw response: ")
    if not sep:
        return None
    try:
        answer = json.JSONDecoder().raw_decode(tail.strip())[0]
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def missing_node(texts: list[str], prompt: dict) -> str | None:
    """The ``class_type`` of a node the endpoint's ComfyUI does not have, read from the
    structure of its answer, never from its wording: the error's ``type`` (see
    ``_MISSING_TYPES``), the node in its ``extra_info`` (``class_type``, ``node_id``) or in
    ``details`` (``Node ID '#N'``), looked up in the workflow sent. None when the failure
    is something else."""
    for text in texts:
        error = (comfy_answer(text) or {}).get("error")
        if not isinstance(error, dict) or error.get("type") not in _MISSING_TYPES:
            continue
        extra = error.get("extra_info") or {}
        found = _NODE_ID.search(str(error.get("details") or ""))
        node_id = str(extra.get("node_id") or (found.group(1) if found else ""))
        ctype = extra.get("class_type") or (prompt.get(node_id) or {}).get("class_type")
        if ctype:
            return str(ctype)
    return None


def with_report_policy(prompt: dict) -> dict:
    """The workflow as sent to an endpoint: ``AP_QualityReport`` nodes set to
    ``policy=report``, so a failed gate still COMPLETES with the summary card (the
    report) and the video. With ``stop`` the job ends FAILED, and RunPod documents no
    ``output`` for FAILED jobs: the report in ``output.details`` could be lost."""
    out = {}
    for nid, node in prompt.items():
        if node.get("class_type") in REPORT_NODES and (node.get("inputs") or {}).get("policy") == "stop":
            log.info("node %s (AP_QualityReport): policy stop sent as report on RunPod Serverless", nid)
            node = {**node, "inputs": {**node["inputs"], "policy": "report"}}
        out[nid] = node
    return out
