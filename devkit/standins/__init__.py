"""Local stand-ins of remote services at their HTTP boundary (RunPod's GraphQL API,
worker-comfyui endpoints), following the response shapes of RunPod's documentation and the
runpod SDK (``runpod/api/queries``, ``mutations``).
They listen on 127.0.0.1 only."""
