"""AP_UpscaleVideo: a whole clip through an upscale model from core ``UpscaleModelLoader``
(spandrel underneath), tiled with ComfyUI's own ``tiled_scale`` (see ``core/upscale.py``)."""

from __future__ import annotations

import json

import torch

from ..core.upscale import FITS, GIB, MIN_TILE, plan_upscale, upscale_frames
from ..core.validate import InputError, check_images
from ._progress import progress_callback
from .image import target_size_inputs

CATEGORY = "anime_pipeline/video"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
AUTO_BUDGET = 0.8  # share of the free RAM the finished clip may take when max_output_gb is 0


def _dtype(precision: str, descriptor, device, mm) -> torch.dtype:
    """fp16 (``auto``) where the device and the model support it, else fp32."""
    if precision == "fp32" or device.type == "cpu" and precision == "auto":
        return torch.float32
    if precision == "bf16":
        if not descriptor.supports_bfloat16:
            raise InputError("precision", "this model does not support bf16; use fp32 or auto", "AP_UpscaleVideo")
        return torch.bfloat16
    if precision == "fp16" and not descriptor.supports_half:
        raise InputError("precision", "this model does not support fp16; use fp32 or auto", "AP_UpscaleVideo")
    if precision == "fp16" or (descriptor.supports_half and mm.should_use_fp16(device, prioritize_performance=True)):
        return torch.float16
    return torch.float32


class UpscaleVideo:
    """Upscale every frame of a clip with an upscale model, then resize to an exact size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": (
                    "An upscale model from Load Upscale Model (models/upscale_models): Real-ESRGAN, its Compact "
                    "variant, anime-tuned models and the other architectures spandrel knows.")}),
                "images": ("IMAGE", {"tooltip": "The clip (or any batch of frames) to upscale."}),
            },
            "optional": {
                **target_size_inputs("the output", "the model-scaled", "the model's outputs"),
                "tile": ("INT", {"default": 512, "min": MIN_TILE, "max": 4096, "step": 32, "tooltip": (
                    "Tile size in input pixels (core Upscale Image (using Model) uses 512). Halved automatically "
                    f"on out-of-memory, down to {MIN_TILE}.")}),
                "overlap": ("INT", {"default": 32, "min": 0, "max": 512, "step": 8, "tooltip": (
                    "Overlap of neighbouring tiles in input pixels, blended with a linear feather (core: 32).")}),
                "batch_size": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": (
                    "Frames per model call; 0 sizes it from the free device memory on a GPU (1 on CPU, where a "
                    "frame's convolutions already use every core and batching only adds memory). Halved "
                    "automatically on out-of-memory (the result does not change).")}),
                "precision": (list(PRECISIONS), {"default": "auto", "tooltip": (
                    "auto: fp16 where the device and model support it (GPU), fp32 on CPU. fp32 matches core "
                    "Upscale Image (using Model) exactly.")}),
                "max_output_gb": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 4096.0, "step": 0.5, "tooltip": (
                    "Memory the upscaled clip may take (GiB); 0 = 80% of the free RAM. A clip that needs more is "
                    "refused with its sizes before any work starts.")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "summary")
    OUTPUT_TOOLTIPS = (
        "The upscaled frames, at the target size (or the model's scale).",
        "JSON report: sizes, scale, tile/batch planned and used, out-of-memory retries, precision.",
    )
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Upscale a whole clip with an upscale model (Load Upscale Model). Tiles exactly like core Upscale Image "
        "(using Model) (comfy.utils.tiled_scale, 512 px tiles, 32 px overlap; fp32 output equals it), but runs "
        "several frames per model call on GPUs sized from free memory, uses fp16 there, retries out-of-memory with "
        "fewer frames then smaller tiles, resizes to an exact target size, and refuses a clip whose output "
        "would not fit in memory before starting."
    )

    def upscale(self, upscale_model, images, target_width=0, target_height=0, fit="crop", tile=512, overlap=32,
                batch_size=0, precision="auto", max_output_gb=0.0):
        import comfy.model_management as mm
        import comfy.utils

        node = "AP_UpscaleVideo"
        images = check_images(images, "images", node=node)
        if fit not in FITS:
            raise InputError("fit", f"must be one of {list(FITS)}, got {fit!r}", node)
        if precision not in PRECISIONS:
            raise InputError("precision", f"must be one of {list(PRECISIONS)}, got {precision!r}", node)
        if not callable(upscale_model) or not hasattr(upscale_model, "scale"):
            raise InputError("upscale_model", f"expected an UPSCALE_MODEL, got {type(upscale_model).__name__}", node)
        device = mm.get_torch_device()
        dtype = _dtype(precision, upscale_model, device, mm)
        model_bytes = mm.module_size(upscale_model.model)
        mm.free_memory(model_bytes + images.nelement() * images.element_size(), device)
        budget = max_output_gb * GIB if max_output_gb > 0 else AUTO_BUDGET * mm.get_free_memory(torch.device("cpu"))
        plan = plan_upscale(
            tuple(images.shape), int(upscale_model.scale), target_width=target_width, target_height=target_height,
            tile=tile, overlap=overlap, batch=batch_size or (1 if device.type == "cpu" else 0),
            free_device_bytes=mm.get_free_memory(device),
            model_bytes=model_bytes, budget_bytes=int(budget), element_size=torch.finfo(dtype).bits // 8,
            min_size=upscale_model.size_requirements.minimum, node=node)
        restore = upscale_model.dtype
        upscale_model.to(device=device, dtype=dtype)
        try:
            out, report = upscale_frames(
                images, upscale_model, plan, tiler=comfy.utils.tiled_scale, oom_errors=(mm.OOM_EXCEPTION,),
                device=device, dtype=dtype, fit=fit, on_oom=mm.soft_empty_cache, progress=progress_callback(),
                node=node)
        finally:
            upscale_model.to(device="cpu", dtype=restore)
        report["architecture"] = getattr(getattr(upscale_model, "architecture", None), "name", None)
        return (out.to(mm.intermediate_device()), json.dumps(report))


NODE_CLASS_MAPPINGS = {"AP_UpscaleVideo": UpscaleVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_UpscaleVideo": "Upscale Video (AP)"}
