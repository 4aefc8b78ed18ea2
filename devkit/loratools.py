"""Tiny LoRA files written at test time (no LoRA weights exist on test machines).

* :func:`wan_lora`: keys of the tiny WAN DiT of the harness (``dim`` 128, ``ffn_dim`` 256,
  one block), in the ``diffusion_model.<path>.lora_up/lora_down/alpha`` layout of real
  WAN 2.2 LoRAs (or the ``lora_unet_<path>`` kohya layout).
* :func:`sdxl_lora`: keys of an SDXL LoRA (kohya ``lora_unet_input_blocks_...`` for the
  UNet plus ``lora_te1_`` / ``lora_te2_`` text-encoder keys): another architecture.
* :func:`key_map_for`: a fake ComfyUI key map (LoRA prefix -> weight key) and weight
  shapes for a list of model weights, built the way ``comfy.lora.model_lora_keys_unet``
  builds its generic entries.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

# (module path, out features, in features) of the tiny WAN DiT's linear layers in block 0
WAN_LINEARS = tuple(
    [(f"blocks.0.{a}.{p}", 128, 128) for a in ("self_attn", "cross_attn") for p in "qkvo"]
    + [("blocks.0.ffn.0", 256, 128), ("blocks.0.ffn.2", 128, 256)]
)


def _pair(gen, out_f: int, in_f: int, rank: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    up = torch.randn(out_f, rank, generator=gen) * scale
    down = torch.randn(rank, in_f, generator=gen) * scale
    return up, down


def wan_lora(seed: int = 0, *, rank: int = 4, scale: float = 0.3, modules=WAN_LINEARS, kohya: bool = False,
             alpha: float | None = None, dim_scale: int = 1) -> dict[str, torch.Tensor]:
    """A random LoRA for the tiny WAN DiT. ``dim_scale`` multiplies every feature size
    (2 -> the same key names with the shapes of a bigger model)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for path, out_f, in_f in modules:
        prefix = f"lora_unet_{path.replace('.', '_')}" if kohya else f"diffusion_model.{path}"
        up, down = _pair(gen, out_f * dim_scale, in_f * dim_scale, rank, scale)
        sd[f"{prefix}.lora_up.weight"] = up
        sd[f"{prefix}.lora_down.weight"] = down
        sd[f"{prefix}.alpha"] = torch.tensor(float(alpha if alpha is not None else rank))
    return sd


def sdxl_lora(seed: int = 0, *, rank: int = 4, text_encoder: bool = True) -> dict[str, torch.Tensor]:
    """A small LoRA with SDXL kohya key names (UNet, and CLIP-L / CLIP-G if asked)."""
    gen = torch.Generator().manual_seed(seed)
    prefixes = [(f"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_{p}", 640, 640) for p in "qkv"]
    prefixes += [("lora_unet_middle_block_1_proj_in", 1280, 1280)]
    if text_encoder:
        prefixes += [(f"lora_te1_text_model_encoder_layers_0_self_attn_{p}_proj", 768, 768) for p in "qk"]
        prefixes += [(f"lora_te2_text_model_encoder_layers_0_self_attn_{p}_proj", 1280, 1280) for p in "qk"]
    sd = {}
    for prefix, out_f, in_f in prefixes:
        up, down = _pair(gen, out_f, in_f, rank, 0.1)
        sd[f"{prefix}.lora_up.weight"] = up
        sd[f"{prefix}.lora_down.weight"] = down
        sd[f"{prefix}.alpha"] = torch.tensor(float(rank))
    return sd


def key_map_for(weights: dict[str, tuple]) -> tuple[dict[str, str], dict[str, tuple]]:
    """Fake ``model_lora_keys_unet`` output for model weights ``{"diffusion_model.x.weight": shape}``:
    ``lora_unet_<x with _>`` and ``diffusion_model.<x>`` both map to the weight key."""
    key_map = {}
    for key in weights:
        if key.startswith("diffusion_model.") and key.endswith(".weight"):
            path = key[len("diffusion_model."):-len(".weight")]
            key_map[f"lora_unet_{path.replace('.', '_')}"] = key
            key_map[f"diffusion_model.{path}"] = key
    return key_map, dict(weights)


def tiny_wan_weights() -> dict[str, tuple]:
    """Shapes of the tiny WAN DiT's block-0 linear weights, as ``diffusion_model.*`` keys."""
    return {f"diffusion_model.{path}.weight": (out_f, in_f) for path, out_f, in_f in WAN_LINEARS}


def write(sd: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Save ``sd`` as safetensors at ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path
