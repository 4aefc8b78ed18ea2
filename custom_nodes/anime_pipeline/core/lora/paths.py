"""Finding a file in ComfyUI's model folders (torch-free, shared by files and registry)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def resolve_file(name: str, dirs: Sequence[str | os.PathLike], *, what: str = "LoRA file") -> Path:
    """The first ``<dir>/<name>`` that is a file, as ComfyUI's ``folder_paths`` finds it.

    ``name`` must be relative and stay inside the folder. Raises ``ValueError`` naming the
    file and every folder searched."""
    clean = name.replace("\\", "/").strip()
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if not parts or clean.startswith("/") or ".." in parts or os.path.isabs(name):
        raise ValueError(f"{what} {name!r} must be a name relative to the loras folder (no absolute path, no '..')")
    for d in dirs:
        path = Path(d, *parts)
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in dirs) or "(no loras folder is configured)"
    raise ValueError(f"{what} {name!r} not found; searched: {searched}")
