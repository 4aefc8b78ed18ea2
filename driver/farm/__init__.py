"""Render farm: a pool of ComfyUI servers, RunPod pods started by the driver, and RunPod
Serverless (worker-comfyui). Each ComfyUI server keeps its own queue and a serverless
endpoint is RunPod's autoscaling queue: the farm only dispatches, watches and records.

Modules: ``dispatch`` (pure slot/priority logic) and ``simulate`` (its discrete-event
simulation); ``pool`` (threads, health checks, preflight per server), ``members``
(members, leases, a member's preflight) and ``pool_executor`` (the scheduler's executor
over the pool: ``map_shots`` and ``slot``); ``serverless``, ``runpod_endpoint`` (HTTP
client, job journal) and ``worker_outputs`` (worker-comfyui endpoints); ``runpod_api``
(the only user of the ``runpod`` SDK), ``runpod_pods`` (the fleet), ``pod_record`` and
``pod_orphans``;
``backend`` (builds a run's backend), ``cli`` (``--farm/--endpoint`` options, ``farm``
command), ``estimate`` (dry-run GPU time and cost), ``redact`` (the API key out of
logs and messages), ``images`` and ``errors``. For users: README.md.

It plugs into the driver as :class:`driver.render.executor.Executor` implementations
(``PoolExecutor``, ``ServerlessExecutor``) built by ``backend.open_backend``.
May import: the base modules, ``driver.story``, ``driver.outputs``, ``driver.render``
and the ComfyUI connection (``driver.comfy``); never the CLI or runner."""
