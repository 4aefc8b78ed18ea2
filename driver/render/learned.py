"""The optional learned stages of the episode pipeline (issue 14): upscale models for the split keyframes and
the delivered clip, a learned interpolator for the retime. Each is added to the compiled prompt only when the
video profile names a model, so a profile without them compiles to exactly the template's graph (byte-identical
to before these existed)."""

from __future__ import annotations

from .workflow import Binder, add_node, link, splice


def upscaler(b: Binder, video: dict, key: str, title: str) -> str | None:
    """An ``UpscaleModelLoader`` for the model the profile names under ``key``; None when it names none."""
    name = video.get(key)
    return add_node(b.prompt, "UpscaleModelLoader", {"model_name": name}, title) if name else None


def upscale(b: Binder, loader: str, source: str, slot: int, width: int, height: int, title: str) -> None:
    """``AP_UpscaleVideo`` spliced after output ``slot`` of ``source``, fitted (crop) to ``width`` x ``height``."""
    splice(b.prompt, source, slot, "AP_UpscaleVideo", {"upscale_model": [loader, 0], "target_width": width,
           "target_height": height, "fit": "crop"}, "images", title)


def enhance_video(b: Binder, video: dict, p: dict) -> None:
    """``interpolator`` -> the retime's learned interpolator; ``delivery_upscale_model`` -> the retimed, trimmed
    clip upscaled to the delivery size."""
    name = video.get("interpolator")
    if name:
        link(b.prompt, "Retime", "interpolator", add_node(b.prompt, "AP_LoadInterpolator", {"model_name": name},
                                                          "Interpolator"))
    loader = upscaler(b, video, "delivery_upscale_model", "Delivery Upscale Model")
    if loader:
        upscale(b, loader, "Fit Frames", 0, p["width"], p["height"], "Delivery Upscale")
