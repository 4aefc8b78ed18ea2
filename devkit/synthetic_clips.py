"""Synthetic clips for the boundary tests of the quality gates, the retimer and the identity
embedder (tests/unit/quality_clips.py has the real footage)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def random_frames(n: int, h: int, w: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``[n,h,w,3]`` float32 of independent uniform noise in ``[low, high)``, seeded by ``n``:
    every frame distinct, so a skipped, repeated or misplaced frame cannot match by accident."""
    rng = np.random.default_rng(n)
    return torch.from_numpy(rng.uniform(low, high, (n, h, w, 3)).astype(np.float32))


def panning_texture(n: int, h: int, w: int, seed: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """``[n,h,w,3]`` float32: a soft (Gaussian-blurred) random texture in ``[low, high]``
    panning 1 px per frame, so every interval has real motion for optical flow."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 1, (h + 8, w + n + 8, 3)).astype(np.float32), (0, 0), 2.0)
    big = low + (high - low) * (big - big.min()) / (big.max() - big.min())
    return np.stack([big[4:4 + h, i:i + w] for i in range(n)]).astype(np.float32)
