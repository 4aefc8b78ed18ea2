"""Headless driver: renders a storyboard through ComfyUI servers, resumably.

Layers, each in its own module: storyboard -> plan -> compile (bind templates by node
title) -> client (one server) -> scheduler (jobs, retakes, review stops) -> outputs,
manifest -> assembly (episode cut, dailies) -> CLI (``python -m driver``).
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("anime-pipeline-toolkit")
except _metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
