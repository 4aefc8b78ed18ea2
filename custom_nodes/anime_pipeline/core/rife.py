"""RIFE v4 frame interpolation (IFNet), for checkpoints users already have.

No maintained library on PyPI provides RIFE v4 as a plain torch module that loads the
published checkpoints (spandrel has single-image models only), so the network lives here,
small and written from the published architecture:

* hzwer/Practical-RIFE ``train_log/IFNet_HDv3.py`` (MIT License), v4.6 and v4.7; the v4.7
  network is also the one of the v4.8 and v4.9 releases (the anime-tuned ones);
* Fannovel16/ComfyUI-Frame-Interpolation ``vfi_models/rife/rife_arch.py`` (MIT License),
  which loads ``rife46.pth`` with arch 4.6 and ``rife47.pth`` / ``rife48.pth`` /
  ``rife49.pth`` with arch 4.7, with these key names (no ``module.`` prefix; Practical-RIFE's
  own ``flownet.pkl`` has one, stripped here).

The pack is MIT too. No weights ship with the pack and nothing is downloaded.

Network (both layouts): four ``IFBlock`` s estimate the bidirectional flow to time ``t`` and
a blend mask coarse to fine (input reduced 8, 4, 2, 1 times); each block is two strided
convs (``conv0``), eight residual convs with a learned per-channel gain (``convblock``, key
``beta``) and a transposed conv + pixel shuffle (``lastconv``, 6 channels: 4 of flow, 1 of
mask, 1 unused). v4.7 adds a tiny feature encoder (``encode``: 4 channels per frame) whose
warped features are fed to every block, and replaces (instead of adding to) the mask at each
refinement. The frame at ``t`` is ``warp(a, F_t0) * m + warp(b, F_t1) * (1 - m)``, ``t`` any
value in (0, 1). The layout is detected from the keys; every key and shape is checked before
anything is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LAYOUTS", "IFNet", "RifeFormatError", "RifeInterpolator", "detect_layout", "load_ifnet"]

# layout -> (input channels, width) of block0..block3, and whether it has the feature encoder
LAYOUTS: dict[str, tuple[tuple[tuple[int, int], ...], bool]] = {
    "4.6": (((7, 192), (12, 128), (12, 96), (12, 64)), False),
    "4.7": (((15, 192), (20, 128), (20, 96), (20, 64)), True),
}
LAYOUT_NAMES = {"4.6": "RIFE v4.6", "4.7": "RIFE v4.7-v4.9"}
MAX_PHASES = 8  # phases of one source pair synthesised per forward pass


class RifeFormatError(ValueError):
    """A checkpoint that is not a supported RIFE v4 layout (keys or shapes differ)."""


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    def __init__(self, cin: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2), _conv(c // 2, c))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        tmp = self.lastconv(self.convblock(self.conv0(x)))
        tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale, tmp[:, 4:5]


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp ``x`` by ``flow`` (pixels), bilinear, border padding, corner-aligned grid."""
    b, _, h, w = flow.shape
    gy, gx = torch.meshgrid(torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype),
                            torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype), indexing="ij")
    grid = torch.stack((gx, gy)).unsqueeze(0)
    norm = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device, dtype=flow.dtype)
    g = (grid + flow * norm.view(1, 2, 1, 1)).permute(0, 2, 3, 1)
    return F.grid_sample(x, g.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    def __init__(self, layout: str):
        super().__init__()
        blocks, encoder = LAYOUTS[layout]
        self.layout = layout
        for i, (cin, c) in enumerate(blocks):
            self.add_module(f"block{i}", IFBlock(cin, c))
        if encoder:
            self.encode = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ConvTranspose2d(16, 4, 4, 2, 1))

    def forward(self, img0, img1, timestep, scales: Sequence[float] = (8, 4, 2, 1)):
        """``img0``/``img1`` ``[B,3,H,W]`` (H, W multiples of 64 / the finest scale), ``timestep``
        ``[B,1,1,1]``; returns the frames at ``timestep`` ``[B,3,H,W]``."""
        t = timestep.expand(-1, 1, img0.shape[2], img0.shape[3])
        enc = self.layout == "4.7"
        f0: Any
        f1: Any
        f0, f1 = (self.encode(img0), self.encode(img1)) if enc else (None, None)
        flow: Any = None
        mask: Any = None
        w0, w1 = img0, img1
        for i, scale in enumerate(scales):
            block = getattr(self, f"block{i}")
            if flow is None:
                x = torch.cat((img0, img1, f0, f1, t) if enc else (img0, img1, t), 1)
                flow, mask = block(x, None, scale)
            elif enc:
                x = torch.cat((w0, w1, warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4]), t, mask), 1)
                fd, mask = block(x, flow, scale)
                flow = flow + fd
            else:
                fd, md = block(torch.cat((w0, w1, t, mask), 1), flow, scale)
                flow, mask = flow + fd, mask + md
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``"4.6"`` or ``"4.7"`` from the key names (shapes are checked by :func:`load_ifnet`)."""
    keys = set(_strip(state))
    if "block0.lastconv.0.weight" not in keys:
        sample = sorted(keys)[:5]
        raise RifeFormatError(f"not a RIFE v4 checkpoint: no 'block0.lastconv.0.weight' key (first keys: {sample}); "
                              f"supported: {', '.join(LAYOUT_NAMES.values())}")
    return "4.7" if "encode.0.weight" in keys else "4.6"


def load_ifnet(state: Mapping[str, torch.Tensor], *, name: str = "checkpoint") -> IFNet:
    """Build the IFNet of ``state``'s layout and load it; every key and shape is checked
    first, and a mismatch lists the first differences (nothing is half-loaded)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RifeFormatError(f"{name}: not a state dict of tensors")
    sd = _strip(state)
    layout = detect_layout(sd)
    net = IFNet(layout)
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    problems = [f"missing {k} {list(s)}" for k, s in want.items() if k not in sd]
    problems += [f"unexpected {k}" for k in sd if k not in want]
    problems += [f"{k}: expected {list(s)}, got {list(sd[k].shape)}" for k, s in want.items()
                 if k in sd and tuple(sd[k].shape) != s]
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise RifeFormatError(f"{name}: keys or shapes do not match the {LAYOUT_NAMES[layout]} layout: "
                              f"{'; '.join(problems[:8])}{more}")
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return net.eval().requires_grad_(False)


class RifeInterpolator:
    """The retimer's ``Interpolator`` backed by a RIFE v4 IFNet (any phase ``t`` in (0, 1)).

    Frames are padded to a multiple of ``64 / scale``; ``scale`` < 1 estimates flow on a reduced
    frame (RIFE's advice for 4K: 0.5). All phases of one source pair go through the net in
    batches of ``MAX_PHASES``. Not thread-safe: the retimer runs it with one worker."""

    name = "rife"
    concurrent = False

    def __init__(self, net: IFNet, *, dtype: torch.dtype = torch.float32, scale: float = 1.0, label: str = "rife"):
        self.net, self.device, self.dtype, self.scale, self.label = net, torch.device("cpu"), dtype, scale, label
        self.layout = net.layout

    @contextmanager
    def on(self, device) -> Iterator[RifeInterpolator]:
        """Run on ``device`` (in ``self.dtype``) inside the block; the net returns to the CPU in fp32."""
        self.net.to(device=device, dtype=self.dtype)
        self.device = torch.device(device)
        try:
            yield self
        finally:
            self.net.to(device="cpu", dtype=torch.float32)
            self.device = torch.device("cpu")

    def interpolate(self, a: np.ndarray, b: np.ndarray, ts: Sequence[float], out: np.ndarray | None = None):
        shape = (len(ts), *a.shape)
        if out is None:
            out = np.empty(shape, np.float32)
        bad = [float(t) for t in ts if not 0.0 < float(t) < 1.0]
        if bad:
            raise ValueError(f"interpolation phases must be in (0, 1), got {bad}")
        h, w = a.shape[:2]
        mult = max(64, round(64 / self.scale))
        ph, pw = -h % mult, -w % mult
        pair = [F.pad(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None], (0, pw, 0, ph))
                .to(self.device, self.dtype).clamp(0, 1) for f in (a, b)]
        scales = [s / self.scale for s in (8, 4, 2, 1)]
        with torch.inference_mode():
            for k in range(0, len(ts), MAX_PHASES):
                part = [float(t) for t in ts[k:k + MAX_PHASES]]
                t = torch.tensor(part, device=self.device, dtype=self.dtype).view(-1, 1, 1, 1)
                n = len(part)
                res = self.net(pair[0].expand(n, -1, -1, -1), pair[1].expand(n, -1, -1, -1), t, scales)
                res = res[:, :, :h, :w].float()
                if not bool(torch.isfinite(res).all()):
                    raise ValueError(f"{self.label}: the interpolation model produced NaN or inf pixels; the "
                                     "checkpoint may be corrupt or unsuited to this precision")
                out[k:k + n] = res.clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return out
