"""Colour differences with OpenCV's CIE Lab (D65, sRGB).

``cv2.cvtColor`` on ``float32`` RGB in 0..1 gives L in 0..100 and a, b in about
-128..127, i.e. the CIE scale on which a delta-E of about 2-3 is a just
noticeable colour difference side by side.
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_u8_to_lab(frame: np.ndarray) -> np.ndarray:
    """``uint8`` (or 0..1 float) RGB ``[H, W, 3]`` -> ``float32`` Lab ``[H, W, 3]``."""
    rgb = frame.astype(np.float32)
    if frame.dtype == np.uint8:
        rgb *= 1.0 / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)


def lab_to_rgb_u8(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def delta_e76(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIE76 delta-E ``[H, W]`` between two RGB frames of one size."""
    diff = rgb_u8_to_lab(a) - rgb_u8_to_lab(b)
    return np.sqrt((diff * diff).sum(axis=-1))


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIE76 delta-E between two RGB frames of one size."""
    return float(delta_e76(a, b).mean())


def mean_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel mean difference ``b - a`` of two RGB ``uint8`` frames, on the 0-255 scale."""
    mean_b = b.reshape(-1, b.shape[-1]).mean(axis=0, dtype=np.float64)
    return mean_b - a.reshape(-1, a.shape[-1]).mean(axis=0, dtype=np.float64)
