"""Real generated footage for the quality-gate tests: template WebPs of
comfyui-workflow-templates (test extra), read at test time and never committed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.imaging import from_uint8
from devkit import calibration as cal

# A lean subset of cal.WAN_CLIPS for unit tests (benchmarks/eval_gates.py runs them all):
# anime i2v, a landscape t2v, a dark 3D-cartoon clip, a bright retimed FLF clip.
ANIME = "image_to_video_wan-1.webp"
POSITIVES = (ANIME, "text_to_video_wan-1.webp", "video_wan2_2_14B_fun_camera-1.webp", "video_wan_vace_flf2v-1.webp")
OTHER = "video_wan2_2_14B_i2v-1.webp"


def clip(name: str, frames: int | None = 33) -> np.ndarray:
    """``uint8 [T,H,W,3]`` (the first ``frames`` frames), or skip the test when absent."""
    try:
        data = cal.template_clip(name)
    except FileNotFoundError as exc:
        pytest.skip(f"real WAN test clips unavailable: {exc}")
    return np.array(data[:frames])


def image(u8: np.ndarray) -> torch.Tensor:
    return from_uint8(u8)
