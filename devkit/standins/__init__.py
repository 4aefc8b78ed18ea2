"""Local stand-ins of remote services at their HTTP boundary (RunPod's GraphQL API,
worker-comfyui endpoints), following the response shapes in shared/reference/runpod.md.
They listen on 127.0.0.1 only."""
