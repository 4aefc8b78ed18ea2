"""Tiny random-weight upscale and interpolation models in the exact file layout of real ones.

No weights exist on test machines; these files have the key names, nesting and shapes of the
published checkpoints (written from explicit tables here, not from the pack's own network
classes, so a loader that drifts from the real layout fails), with random weights:

* ``write_compact`` : Real-ESRGAN Compact (SRVGGNetCompact, e.g. ``realesr-animevideov3.pth``):
  ``{"params": {"body.0.weight" [nf,3,3,3], "body.1.weight" [nf] (PReLU), ...,
  "body.<last>.weight" [3*s*s, nf, 3, 3]}}``; here nf 8, 2 inner convs, x2.
* ``write_rrdb`` : Real-ESRGAN RRDBNet (``RealESRGAN_x4plus.pth``): ``{"params_ema": {conv_first,
  body.<i>.rdb<1-3>.conv<1-5> (growth 32), conv_body, conv_up1, conv_up2, conv_hr, conv_last}}``;
  here nf 8, one RRDB block, x4.
* ``write_rife`` : RIFE v4 IFNet as ``rife46.pth`` (layout "4.6") or ``rife47.pth`` /
  ``rife49.pth`` (layout "4.7") of ComfyUI-Frame-Interpolation: a flat state dict, block widths
  192/128/96/64 as in the real files (~20 MB; the widths are fixed by the architecture).

Runs with any Python that has torch (no ComfyUI needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch


def _randn(shape, gen, *, gain: float = 1.0) -> torch.Tensor:
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return torch.randn(shape, generator=gen) * (gain / math.sqrt(fan_in))


def compact_shapes(nf: int = 8, num_conv: int = 2, scale: int = 2) -> dict[str, tuple[int, ...]]:
    shapes = {"body.0.weight": (nf, 3, 3, 3), "body.0.bias": (nf,), "body.1.weight": (nf,)}
    for i in range(num_conv):
        shapes[f"body.{2 * i + 2}.weight"] = (nf, nf, 3, 3)
        shapes[f"body.{2 * i + 2}.bias"] = (nf,)
        shapes[f"body.{2 * i + 3}.weight"] = (nf,)
    last = 2 * num_conv + 2
    shapes[f"body.{last}.weight"] = (3 * scale * scale, nf, 3, 3)
    shapes[f"body.{last}.bias"] = (3 * scale * scale,)
    return shapes


def rrdb_shapes(nf: int = 8, blocks: int = 1, gc: int = 32) -> dict[str, tuple[int, ...]]:
    shapes = {"conv_first.weight": (nf, 3, 3, 3), "conv_first.bias": (nf,)}
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                cout = nf if c == 5 else gc
                shapes[f"body.{b}.rdb{r}.conv{c}.weight"] = (cout, nf + (c - 1) * gc, 3, 3)
                shapes[f"body.{b}.rdb{r}.conv{c}.bias"] = (cout,)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[f"{name}.weight"] = (nf, nf, 3, 3)
        shapes[f"{name}.bias"] = (nf,)
    shapes["conv_last.weight"] = (3, nf, 3, 3)
    shapes["conv_last.bias"] = (3,)
    return shapes


RIFE_BLOCKS = {"4.6": ((7, 192), (12, 128), (12, 96), (12, 64)), "4.7": ((15, 192), (20, 128), (20, 96), (20, 64))}


def rife_shapes(layout: str) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if layout == "4.7":
        shapes.update({"encode.0.weight": (16, 3, 3, 3), "encode.0.bias": (16,),
                       "encode.1.weight": (16, 4, 4, 4), "encode.1.bias": (4,)})  # ConvTranspose2d: [in, out, k, k]
    for i, (cin, c) in enumerate(RIFE_BLOCKS[layout]):
        p = f"block{i}"
        shapes.update({f"{p}.conv0.0.0.weight": (c // 2, cin, 3, 3), f"{p}.conv0.0.0.bias": (c // 2,),
                       f"{p}.conv0.1.0.weight": (c, c // 2, 3, 3), f"{p}.conv0.1.0.bias": (c,)})
        for j in range(8):
            shapes.update({f"{p}.convblock.{j}.conv.weight": (c, c, 3, 3), f"{p}.convblock.{j}.conv.bias": (c,),
                           f"{p}.convblock.{j}.beta": (1, c, 1, 1)})
        shapes.update({f"{p}.lastconv.0.weight": (c, 24, 4, 4), f"{p}.lastconv.0.bias": (24,)})
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int, *, gain: float = 1.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("beta") or (len(shape) == 1 and not key.endswith("bias")):  # gains, PReLU slopes
            state[key] = torch.full(shape, 0.25 if len(shape) == 1 else 1.0)
        elif key.endswith("bias"):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            state[key] = _randn(shape, gen, gain=gain)
    return state


def write_compact(path: Path, seed: int = 1) -> Path:
    torch.save({"params": random_state(compact_shapes(), seed)}, path)
    return path


def write_rrdb(path: Path, seed: int = 2) -> Path:
    torch.save({"params_ema": random_state(rrdb_shapes(), seed, gain=0.5)}, path)
    return path


def write_rife(path: Path, layout: str, seed: int = 3, *, prefix: str = "") -> Path:
    state = random_state(rife_shapes(layout), seed, gain=0.5)
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path
