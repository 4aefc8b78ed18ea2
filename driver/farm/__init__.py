"""Render farm: a pool of ComfyUI servers, RunPod pods started by the driver, and RunPod
Serverless (worker-comfyui). Each ComfyUI server keeps its own queue and a serverless
endpoint is RunPod's autoscaling queue: the farm only dispatches, watches and records.

Modules: ``dispatch`` (pure slot/priority logic), ``simulate`` (its discrete-event
simulation), ``pool`` (threads, health checks, preflight per server), ``executor``
(the scheduler's executor over the pool), ``serverless`` (worker-comfyui endpoints),
``runpod_pods`` (pods via the official SDK), ``estimate`` (dry-run GPU time and cost),
``redact`` (keeps the API key out of logs and messages)."""
