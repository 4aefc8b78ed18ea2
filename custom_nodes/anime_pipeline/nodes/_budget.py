"""The memory budget of a node that allocates its output from widget values
(``AP_HeldFramePush``, ``AP_TriptychSplit``, ``AP_AnimeRetime``; ``AP_UpscaleVideo`` has its own
``max_output_gb``): an optional ``memory_budget_mb`` socket, added last (a socket, not a
widget, so saved UI workflows keep their widget values), else a share of the free memory of
the device the output is made on."""

from __future__ import annotations

from ..core.validate import MIB

AUTO_SHARE = 0.8  # of the free memory, when memory_budget_mb is 0 or not connected


def budget_input() -> dict:
    return {"memory_budget_mb": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "forceInput": True, "tooltip": (
        "Memory the node's output may take, in MiB; 0 or unconnected = 80% of the free memory of the device. "
        "A larger output is refused with its size before anything is allocated.")})}


def budget(memory_budget_mb: int | None, device=None) -> tuple[int, str]:
    """(budget in bytes, where it came from) for :func:`core.validate.check_budget`."""
    if memory_budget_mb:
        return int(memory_budget_mb) * MIB, f"memory_budget_mb = {int(memory_budget_mb)}"
    try:
        import comfy.model_management as mm
    except ImportError:  # outside ComfyUI (unit tests, scripts): the machine's available RAM
        import psutil

        dev, free = "cpu", psutil.virtual_memory().available
    else:
        dev = device if device is not None else mm.intermediate_device()
        free = mm.get_free_memory(dev)
    return int(AUTO_SHARE * free), f"80% of the {free / MIB / 1024:.2f} GiB free on {dev}"
