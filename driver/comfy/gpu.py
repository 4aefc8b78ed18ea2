"""Is there a GPU ComfyUI could use? Asked without importing torch (the driver's Python may have none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def gpu_present() -> bool:
    """True when an NVIDIA or AMD (ROCm) device is visible, or on macOS (Metal). A machine that says False
    gets a CPU torch and ComfyUI's ``--cpu``."""
    if os.environ.get("AP_FORCE_CPU"):
        return False
    if sys.platform == "darwin":
        return True
    if os.path.exists("/dev/kfd"):
        return True
    if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return os.path.exists("/dev/nvidia0")
