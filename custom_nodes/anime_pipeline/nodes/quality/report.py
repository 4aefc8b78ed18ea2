"""``AP_QualityReport``: collect gate results, report them, optionally stop the run."""

from __future__ import annotations

import logging
import os

from ...core.contracts import GateResult
from ...core.quality import report as qr
from ...core.quality.card import card_png
from ...core.validate import InputError, check_images
from .gates import CATEGORY, GATE

log = logging.getLogger("anime_pipeline")

NODE = "AP_QualityReport"
SLOTS = tuple(f"gate_{i}" for i in range(1, 9))
DEFAULT_PREFIX = "ap_quality/card"


def save_card(png: bytes, filename_prefix: str, width: int, height: int) -> dict:
    """Write the card into ComfyUI's output folder; returns its ``images`` UI entry."""
    import folder_paths

    out_dir = folder_paths.get_output_directory()
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir, width, height)
    name = f"{filename}_{counter:05}_.png"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(png)
    return {"filename": name, "subfolder": subfolder, "type": "output"}


class QualityReport:
    @classmethod
    def INPUT_TYPES(cls):
        gate_tip = "A gate result (AP_GATE_RESULT) from any quality gate of this pack."
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": (
                    "The clip the gates judged; passed through on the frames output. Wire everything that must "
                    "not run after a failure (retime, upscale, SaveVideo) from that output.")}),
                "policy": (list(qr.POLICIES), {"default": "report", "tooltip": (
                    "report: always continue (the report says what failed). stop: when a gate failed, raise an "
                    "error carrying the report, so nothing wired from the frames output runs.")}),
                "label": ("STRING", {"default": "", "tooltip": "Free text recorded in the report (e.g. the shot id)."}),
                "filename_prefix": ("STRING", {"default": DEFAULT_PREFIX, "tooltip": (
                    "Where the summary card PNG goes, relative to ComfyUI's output folder.")}),
            },
            "optional": {slot: (GATE, {"tooltip": gate_tip}) for slot in SLOTS},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("IMAGE", "STRING", "BOOLEAN")
    RETURN_NAMES = ("frames", "report", "passed")
    OUTPUT_TOOLTIPS = (
        "The input frames, unchanged; with policy=stop nothing wired from here runs after a failure.",
        "The quality report as JSON (format: docs/quality_report.md).",
        "True when every connected gate passed.",
    )
    FUNCTION = "collect"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Collect up to 8 gate results into one JSON report (version 1), returned in the UI output under "
        "ap_quality_report (so /history carries it) and as a summary card PNG (table of the gates, full JSON in "
        "a PNG text chunk) for clients that only collect images. policy=stop turns a failure into an error "
        "whose first line names the failed gates and their numbers, followed by 'AP_QUALITY_REPORT:' and the "
        "report JSON.")

    def collect(self, frames, policy, label, filename_prefix, unique_id=None, **gates):
        frames = check_images(frames, "frames", node=NODE, finite=False)
        if policy not in qr.POLICIES:
            raise InputError("policy", f"must be one of {list(qr.POLICIES)}, got {policy!r}", NODE)
        results = {}
        for slot in SLOTS:
            value = gates.get(slot)
            if value is None:
                continue
            if not isinstance(value, GateResult):
                raise InputError(slot, f"expected {GATE} from a quality gate, got {type(value).__name__}", NODE)
            results[slot] = value
        n, h, w = frames.shape[:3]
        rep = qr.build_report(results, n_frames=n, width=w, height=h, policy=policy, label=str(label),
                              node=None if unique_id is None else str(unique_id))
        if not rep["passed"]:
            log.warning("anime_pipeline %s", rep["summary"])
            if policy == "stop":
                raise qr.QualityStop(rep)
        card = save_card(card_png(rep), filename_prefix or DEFAULT_PREFIX, w, h)
        return {"ui": {qr.UI_KEY: [rep], "images": [card]},
                "result": (frames, qr.to_json(rep), bool(rep["passed"]))}
