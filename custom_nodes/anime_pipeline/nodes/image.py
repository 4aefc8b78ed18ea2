"""Nodes of the ``anime_pipeline/image`` family."""

from __future__ import annotations

import json

from ..core.triptych import FITS, MODES, split_triptych
from ._budget import budget, budget_input

CATEGORY = "anime_pipeline/image"
MAX_SIZE = 16384


def target_size_inputs(what: str, source: str, subject: str) -> dict:
    """The optional ``target_width`` / ``target_height`` / ``fit`` inputs of a resizing node
    (``core.imaging.fit_frames`` semantics)."""
    return {
        "target_width": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 8, "tooltip": (
            f"Width of {what}; 0 keeps {source} width (or follows target_height's aspect).")}),
        "target_height": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 8, "tooltip": (
            f"Height of {what}; 0 keeps {source} height (or follows target_width's aspect).")}),
        "fit": (list(FITS), {"default": "crop", "tooltip": (
            f"How {subject} reach the target size: crop = scale to cover, then centre-crop; pad = scale to fit, "
            "centred on black; stretch = scale each axis independently. Lanczos when enlarging, area "
            "averaging when reducing.")}),
    }


class TriptychSplit:
    """One T2I triptych strip (first | hero | last) -> the three keyframes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "strip": ("IMAGE", {"tooltip": "Triptych strip(s): first, hero and last panels side by side. "
                                               "A batch is allowed; each strip is detected on its own."}),
                "mode": (list(MODES), {"default": "auto", "tooltip": (
                    "auto: find the gutters and borders (uniform light or dark columns/rows) and cut three equal "
                    "panels, falling back to thirds when there are none. thirds: cut at round(W/3) and round(2W/3), "
                    "then crop to one common width.")}),
            },
            "optional": {
                "trim_margin": ("INT", {"default": 0, "min": 0, "max": 512, "step": 1, "tooltip": (
                    "Pixels removed from every side of each panel after detection (soft or noisy panel edges).")}),
                **target_size_inputs("the output panels", "the detected", "panels"),
                **budget_input(),
            },
        }

    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("first", "hero", "last", "panels", "boxes")
    OUTPUT_TOOLTIPS = (
        "First panel of each strip.",
        "Hero (middle) panel of each strip.",
        "Last panel of each strip.",
        "All panels as one batch: first, hero, last of strip 0, then of strip 1, ...",
        "JSON report: per strip the mode used, a note when auto fell back to thirds, the gutter colour and "
        "the panel boxes (x, y, w, h in strip pixels); the output size and fit.",
    )
    FUNCTION = "split"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Split a triptych strip (three story panels side by side, e.g. 1536x912 with thin gutters) into its first, "
        "hero and last keyframes. auto finds uniform-colour gutters and borders (light or dark, 0 px included) and "
        "keeps panel edges that are merely close to the gutter colour; every panel of a strip has the same size. "
        "Strips of a batch whose panels differ in size need target_width/target_height, otherwise it is an error. "
        "Optional resize to the keyframe size (e.g. 488x892 panels -> 768x1344) with crop / pad / stretch."
    )

    def split(self, strip, mode="auto", trim_margin=0, target_width=0, target_height=0, fit="crop",
              memory_budget_mb=0):
        first, hero, last, panels, report = split_triptych(
            strip, mode, trim_margin, target_width, target_height, fit, node="AP_TriptychSplit",
            budget=budget(memory_budget_mb))
        return (first, hero, last, panels, json.dumps(report, indent=2))


NODE_CLASS_MAPPINGS = {"AP_TriptychSplit": TriptychSplit}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_TriptychSplit": "Triptych Split (AP)"}
