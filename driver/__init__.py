"""Headless driver: renders a storyboard through ComfyUI servers, resumably.

Packages by job (docs/architecture.md draws how they connect; each ``__init__`` says
what it owns and may import, and tests/unit/test_driver_layers.py enforces it):

- base modules here: ``errors`` (codes, exit codes), ``files`` (atomic writes, hashes),
  ``config``, ``validation``, ``progress``;
- ``story``: storyboard -> plan (jobs);
- ``comfy``: the ComfyUI connection (client; local and managed servers);
- ``outputs``: run manifest, assets, approvals, quality reports, cut, dailies;
- ``render``: compile, preflight, the Executor contract, the scheduler;
- ``farm``: pools of servers, RunPod pods and Serverless (Executors);
- the commands: ``runner`` (run, validate, status, in stages), ``backends`` (where a run
  renders: the one server list, pool or single server), ``cli`` (``python -m driver``),
  ``ui_export``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("anime-pipeline-toolkit")
except _metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
