"""ComfyUI progress reporting for the node wrappers (the driver sees it as websocket
``progress`` events). The pure modules take a plain ``(done, total)`` callback."""

from __future__ import annotations

from typing import Callable


def progress_callback() -> Callable[[int, int], None] | None:
    """A ``(done, total)`` callback driving ComfyUI's progress bar; None outside ComfyUI."""
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return None
    bar = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = ProgressBar(total)
        bar["bar"].update_absolute(done, total)

    return update
