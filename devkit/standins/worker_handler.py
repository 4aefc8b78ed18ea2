"""What a worker-comfyui job returns, rebuilt from the real code (written here, not
copied): ``handler.py`` of runpod-workers/worker-comfyui at tag 5.8.5 (commit d2a5572)
and ``runpod/serverless/modules/rp_job.py::run_job`` of runpod-python 1.12.0 (commit
07fc6e2), which turns the handler's return value into the job's result.

handler.py 5.8.5, as emulated:

* ``validate_input``: ``input`` may be a JSON string; no ``workflow`` ->
  ``{"error": "Missing 'workflow' parameter"}``; ``images`` must be a list of
  ``{"name", "image"}``.
* Input images go to ComfyUI's ``/upload/image`` (``overwrite=true``); any failure ->
  ``{"error": "Failed to upload one or more input images", "details": [...]}``.
* ``queue_workflow``: only an HTTP **400** from ``/prompt`` is a validation failure (a
  200 with ``node_errors`` is queued and runs). Its text: the ``error.message`` (or
  "Workflow validation failed" for ``prompt_outputs_failed_validation``), then one
  ``• Node <id> (<key>): <value>`` line per key of each ``node_errors`` entry; with no
  ``node_errors``, ``"<message>. Raw response: <the 400 body>"``. Raised as a
  ValueError, returned as ``{"error": text}``. Other HTTP errors ->
  ``{"error": "Error queuing workflow: ..."}``.
* Waiting: the real handler listens on ComfyUI's websocket; here ``/history`` is
  polled (same outcome). An ``execution_error`` adds ``"Workflow execution error: Node
  Type: T, Node ID: N, Message: M"`` to ``errors`` and ends the wait.
* Outputs: only items under ``images`` that are not ``temp``, each
  ``{"filename", "type": "base64" | "s3_url", "data"}``; other keys are ignored. No
  outputs and no errors adds "No outputs found in history for prompt <id>." to errors.
* Result: images and errors -> ``{"images", "errors"}``; errors only ->
  ``{"error": "Job processing failed", "details": errors}``; nothing ->
  ``{"status": "success_no_images", "images": []}``.

rp_job.run_job 1.12.0: a dict result has ``error`` popped into the job's ``error``,
the rest is its ``output`` (dropped when empty); an exception becomes
``{"error": json.dumps({"error_type", "error_message", ...})}``. The job is FAILED when
its result has an ``error`` (RunPod's platform side; the SDK's local test server,
rp_fastapi.py, answers such jobs with ``{"id", "status": "FAILED", "error"}`` and no
output).

Not emulated: the websocket and its reconnects, the "Available checkpoint models" hint
(it calls ``/object_info``), network-volume diagnostics."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Callable

import requests


def validate_input(job_input) -> tuple[dict | None, str | None]:
    if job_input is None:
        return None, "Please provide input"
    if isinstance(job_input, str):
        try:
            job_input = json.loads(job_input)
        except json.JSONDecodeError:
            return None, "Invalid JSON format in input"
    workflow = job_input.get("workflow")
    if workflow is None:
        return None, "Missing 'workflow' parameter"
    images = job_input.get("images")
    if images is not None and (not isinstance(images, list)
                               or not all("name" in i and "image" in i for i in images)):
        return None, "'images' must be a list of objects with 'name' and 'image' keys"
    return {"workflow": workflow, "images": images}, None


def upload_images(comfy: str, images: list[dict]) -> list[str]:
    errors = []
    for img in images:
        data = img["image"].split(",", 1)[1] if "," in img["image"] else img["image"]
        try:
            blob = base64.b64decode(data)
            r = requests.post(f"{comfy}/upload/image", files={"image": (img["name"], blob, "image/png")},
                              data={"overwrite": "true"}, timeout=30)
            r.raise_for_status()
        except Exception as exc:  # noqa: BLE001 - as the handler: every failure is listed
            errors.append(f"Error uploading {img.get('name', 'unknown')}: {exc}")
    return errors


def validation_error(resp: requests.Response) -> str:
    """The ValueError text queue_workflow raises for ComfyUI's 400."""
    try:
        data = resp.json()
    except ValueError:
        return f"ComfyUI validation failed (could not parse error response): {resp.text}"
    message, details = "Workflow validation failed", []
    info = data.get("error")
    if isinstance(info, dict):
        message = info.get("message", message)
        if info.get("type") == "prompt_outputs_failed_validation":
            message = "Workflow validation failed"
    elif info is not None:
        message = str(info)
    for node_id, node_error in (data.get("node_errors") or {}).items():
        if isinstance(node_error, dict):
            details += [f"Node {node_id} ({key}): {value}" for key, value in node_error.items()]
        else:
            details.append(f"Node {node_id}: {node_error}")
    if details:
        return f"{message}:\n" + "\n".join(f"• {d}" for d in details)
    return f"{message}. Raw response: {resp.text}"


def queue_workflow(comfy: str, workflow: dict) -> str:
    resp = requests.post(f"{comfy}/prompt", json={"prompt": workflow, "client_id": str(uuid.uuid4())}, timeout=30)
    if resp.status_code == 400:
        raise ValueError(validation_error(resp))
    try:
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise ValueError(f"Error queuing workflow: {exc}") from None
    prompt_id = resp.json().get("prompt_id")
    if not prompt_id:
        raise ValueError(f"Missing 'prompt_id' in queue response: {resp.json()}")
    return prompt_id


def wait(comfy: str, prompt_id: str, on_queued: Callable[[str], None]) -> list[str]:
    """Until the prompt ends; its execution error, as the handler words it."""
    on_queued(prompt_id)
    while True:
        entry = requests.get(f"{comfy}/history/{prompt_id}", timeout=30).json().get(prompt_id)
        if entry and (entry.get("status") or {}).get("completed") is not None:
            break
        time.sleep(0.05)
    for event, data in (entry.get("status") or {}).get("messages", []):
        if event == "execution_error":
            return [f"Workflow execution error: Node Type: {data.get('node_type')}, Node ID: "
                    f"{data.get('node_id')}, Message: {data.get('exception_message')}"]
    return []


def collect(comfy: str, outputs: dict, store: Callable[[str, bytes], dict]) -> list[dict]:
    found = []
    for ui in outputs.values():
        for item in ui.get("images") or []:
            if item.get("type") == "temp":
                continue
            blob = requests.get(f"{comfy}/view", params={"filename": item["filename"], "subfolder":
                                item.get("subfolder", ""), "type": item.get("type", "output")}, timeout=60).content
            found.append(store(item["filename"], blob))
    return found


def handler(comfy: str, job_input, *, store: Callable[[str, bytes], dict],
            on_queued: Callable[[str], None] = lambda pid: None) -> dict:
    """worker-comfyui 5.8.5 ``handler(job)``'s return value."""
    payload, problem = validate_input(job_input)
    if problem:
        return {"error": problem}
    if payload["images"]:
        upload_errors = upload_images(comfy, payload["images"])
        if upload_errors:
            return {"error": "Failed to upload one or more input images", "details": upload_errors}
    try:
        prompt_id = queue_workflow(comfy, payload["workflow"])
        errors = wait(comfy, prompt_id, on_queued)
        history = requests.get(f"{comfy}/history/{prompt_id}", timeout=30).json()
        outputs = (history.get(prompt_id) or {}).get("outputs") or {}
        if not outputs and not errors:
            errors.append(f"No outputs found in history for prompt {prompt_id}.")
        images = collect(comfy, outputs, store)
    except requests.RequestException as exc:
        return {"error": f"HTTP communication error with ComfyUI: {exc}"}
    except ValueError as exc:
        return {"error": str(exc)}
    result = {"images": images} if images else {}
    if errors:
        result["errors"] = errors
    if not images and errors:
        return {"error": "Job processing failed", "details": errors}
    if not images:
        return {"status": "success_no_images", "images": []}
    return result


def run_job(handle: Callable[[], object]) -> dict:
    """runpod-python 1.12.0 ``rp_job.run_job``: the handler's return value as the job's result."""
    try:
        output = handle()
    except Exception as exc:  # noqa: BLE001 - as the SDK: reported as the job's error
        return {"error": json.dumps({"error_type": str(type(exc)), "error_message": str(exc),
                                     "error_traceback": "", "hostname": "standin", "worker_id": "standin",
                                     "runpod_version": "1.12.0"})}
    result: dict = {}
    if isinstance(output, dict):
        output = dict(output)
        error = output.pop("error", None)
        output.pop("refresh_worker", None)
        result["output"] = output
        if error:
            result["error"] = error
    else:
        result["output"] = output
    if result.get("output") == {}:
        result.pop("output")
    return result
