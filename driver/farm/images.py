"""Names of the farm images built from ``docker/`` (see docker/README.md): the messages
that refuse a server or endpoint without the pack name the image to use instead.
``<registry>`` is wherever you push them (they are not published by this project)."""

from __future__ import annotations

#: ComfyUI pinned as in the images (``docker/*/Dockerfile``, ``COMFYUI_VERSION``).
COMFYUI_VERSION = "0.3.64"
#: Base of the serverless image (``docker/serverless/Dockerfile``).
WORKER_COMFYUI_BASE = "runpod/worker-comfyui:5.8.5-base"

#: Image names as the docker/ README builds them; only used in messages (there is no
#: published image and no default: pods need ``--image``, ``--template`` or a configured one).
POD_IMAGE_NAME = "anime-pipeline-pod:0.1.0"
POD_IMAGE = f"<registry>/{POD_IMAGE_NAME}"
SERVERLESS_IMAGE = "<registry>/anime-pipeline-serverless:0.1.0"
