"""Write tiny random-weight models that ComfyUI auto-detects as the real architectures.

Run with ComfyUI's Python from the ComfyUI folder (it imports ComfyUI's model code):

    $COMFYUI_PYTHON devkit/harness/make_tiny_models.py OUT_DIR

Writes into OUT_DIR:
* ``tiny_wan22_i2v_high.safetensors`` / ``tiny_wan22_i2v_low.safetensors``: WAN DiTs built
  like WAN 2.2 i2v 14B (``model_type='t2v'``, ``in_dim=36`` -> detected as WAN21 i2v with
  20 concat channels) but with ``dim=128`` (detection sets num_heads = dim // 128),
  ``ffn_dim=256``, one layer, random N(0, 0.02), keys without prefix (~4 MB each);
* ``tiny_wan21_vae.safetensors``: a full-size WAN 2.1 VAE (its ``dim=96`` config is what
  detection expects) with explicitly filled random weights (fp16, ~254 MB).

These test graph wiring, validation and file plumbing, never visual quality.
"""

from __future__ import annotations

import math
import os
import sys

RECIPE_VERSION = 1  # bump when the recipe changes: cached files are keyed by it


def _fill(module, generator, *, dit: bool):
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if dit:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            elif name.endswith("gamma") or (p.ndim == 1 and "norm" in name):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))


def main(out_dir: str) -> None:
    # sys.path[0] is this script's folder, whose comfy.py (the harness) would shadow
    # ComfyUI's `comfy` package: import from the ComfyUI folder (the cwd) instead.
    sys.path[0] = os.getcwd()
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.ops
    import torch
    from comfy.ldm.wan.model import WanModel
    from comfy.ldm.wan.vae import WanVAE
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    for seed, name in ((1, "tiny_wan22_i2v_high.safetensors"), (2, "tiny_wan22_i2v_low.safetensors")):
        gen = torch.Generator().manual_seed(seed)
        dit = WanModel(model_type="t2v", in_dim=36, dim=128, ffn_dim=256, num_heads=1, num_layers=1,
                       out_dim=16, operations=comfy.ops.disable_weight_init)
        _fill(dit, gen, dit=True)
        sd = {k: v.contiguous() for k, v in dit.state_dict().items()}
        save_file(sd, os.path.join(out_dir, name + ".part"))
        os.replace(os.path.join(out_dir, name + ".part"), os.path.join(out_dir, name))

    gen = torch.Generator().manual_seed(3)
    vae = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    _fill(vae, gen, dit=False)
    sd = {k: v.to(torch.float16).contiguous() for k, v in vae.state_dict().items()}
    name = "tiny_wan21_vae.safetensors"
    save_file(sd, os.path.join(out_dir, name + ".part"))
    os.replace(os.path.join(out_dir, name + ".part"), os.path.join(out_dir, name))


if __name__ == "__main__":
    main(sys.argv[1])
