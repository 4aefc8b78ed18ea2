"""Nodes of the ``anime_pipeline/video`` family: split first-last-frame planning and joining,
and the held-frame push."""

from __future__ import annotations

import json
import logging

from ..core.chain import COLOR_MATCH, concat_segments
from ..core.push import EASINGS, SAMPLINGS, held_frame_push
from ..core.segments import DEFAULT_MAX_SEGMENT, MIN_SEGMENT, WAN_FPS, plan_split_flf
from ._budget import budget, budget_input
from ._progress import progress_callback

log = logging.getLogger("anime_pipeline")

CATEGORY = "anime_pipeline/video"
MAX_SIZE = 16384
MAX_FRAMES = 16384


class FLFSegmentPlan:
    """Segment lengths of a split first-last-frame shot (WAN 4n+1 maths)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "duration_s": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 600.0, "step": 0.0625, "tooltip": (
                    "Shot duration in seconds; frames = round(duration_s x fps). Ignored when total_frames > 0.")}),
                "fps": ("FLOAT", {"default": WAN_FPS, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip": (
                    "Frame rate the segments are generated at (WAN: 16).")}),
                "hero_position": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                    "Where the hero keyframe sits, as a fraction of the shot (0 = first frame, 1 = last). "
                    "Ignored when hero_frame >= 0.")}),
                "max_segment": ("INT", {"default": DEFAULT_MAX_SEGMENT, "min": MIN_SEGMENT, "max": MAX_FRAMES,
                                        "step": 4, "tooltip": (
                    "Longest segment WAN should generate, in frames (81 = WAN 2.x's native length).")}),
            },
            "optional": {
                "total_frames": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES, "tooltip": (
                    "Shot length in frames; 0 uses duration_s x fps instead.")}),
                "hero_frame": ("INT", {"default": -1, "min": -1, "max": MAX_FRAMES, "tooltip": (
                    "Hero keyframe as a frame index of the shot; -1 uses hero_position instead.")}),
            },
        }

    RETURN_TYPES = ("INT", "INT", "INT", "INT", "STRING")
    RETURN_NAMES = ("length_a", "length_b", "total", "hero_index", "plan")
    OUTPUT_TOOLTIPS = (
        "Length of segment A (first -> hero), 4n+1 frames: the length input of its WanFirstLastFrameToVideo.",
        "Length of segment B (hero -> last), 4n+1 frames.",
        "Frames of the joined shot: length_a + length_b - 1 (the shared hero frame once), 4m+1.",
        "Index of the hero frame in the joined shot (a multiple of 4).",
        "The plan as JSON (lengths, requested frames, fps, notes such as a moved hero).",
    )
    FUNCTION = "plan"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Plan a split first-last-frame shot: segment A (first -> hero) and segment B (hero -> last), joined by "
        "FLF Chain Concat (AP) with the shared hero frame once. WAN lengths must be 4n+1 frames (its VAE silently "
        "drops the rest, and the end keyframe with it). Rules: the requested total (total_frames, else "
        "round(duration_s x fps), halves up) is rounded to the nearest 4m+1, ties upward; the hero index is the "
        "multiple of 4 nearest the requested position (hero_frame, else hero_position x (total - 1)), ties "
        "upward, within [4, total - 5]; each segment has 5..max_segment frames (the hero moves if a segment "
        "would be longer, noted in the plan); a total that needs longer segments is an error suggesting more "
        "segments. total = length_a + length_b - 1."
    )

    def plan(self, duration_s, fps, hero_position, max_segment, total_frames=0, hero_frame=-1):
        plan = plan_split_flf(
            duration_s=duration_s,
            fps=fps,
            total_frames=total_frames if total_frames > 0 else None,
            hero_position=hero_position,
            hero_frame=hero_frame if hero_frame >= 0 else None,
            max_segment=max_segment,
            node="AP_FLFSegmentPlan",
        )
        for note in plan.notes:
            log.info("AP_FLFSegmentPlan: %s", note)
        return (plan.length_a, plan.length_b, plan.total, plan.hero_index, json.dumps(plan.to_dict(), indent=2))


class FLFChainConcat:
    """Join split-FLF segments A and B at the shared hero frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "segment_a": ("IMAGE", {"tooltip": "Frames of segment A (first -> hero); its last frame is the hero."}),
                "segment_b": ("IMAGE", {"tooltip": "Frames of segment B (hero -> last), same size as segment_a."}),
                "drop_shared_hero": ("BOOLEAN", {"default": True, "tooltip": (
                    "Drop B's first frame: it is the hero generated a second time, always dropped whatever it "
                    "looks like. Off only for segments that do not share a frame.")}),
                "smooth_frames": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": (
                    "Spread the seam's jump over this many frames of B: the low-passed difference between A's "
                    "last and B's first frame is added with weights k/(k+1) ... 1/(k+1). 0 = off. The frame "
                    "count does not change.")}),
                "color_match": (list(COLOR_MATCH), {"default": "off", "tooltip": (
                    "Match B's colour and brightness to A (per-channel mean/std transfer measured between A's last "
                    "and B's first frame). fade: full strength on the first frame after the seam, falling "
                    "linearly to none at B's last frame (B's end keyframe stays as generated, so a B that "
                    "contributes only that frame is unchanged); all: the same correction on every frame of B.")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "seam_report")
    OUTPUT_TOOLTIPS = (
        "A then B: len(A) + len(B) - 1 frames with drop_shared_hero, len(A) + len(B) without.",
        "JSON with seam_index (first output frame from B), dropped_frame (index in B, or null), luma_jump "
        "(mean luma step across the seam, 0..1), ssim_across_seam and hero_similarity (SSIM of A's last vs "
        "B's first input frame). Read by the seam quality gate.",
    )
    FUNCTION = "concat"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Join the two segments of a split first-last-frame shot (A: first -> hero, B: hero -> last). B's first "
        "frame repeats the hero and is dropped, so the result has len(A) + len(B) - 1 frames. Optional colour "
        "matching and seam smoothing hide the small difference between the two renders of the hero; neither "
        "changes the frame count. Segments of different sizes are an error (no silent resize)."
    )

    def concat(self, segment_a, segment_b, drop_shared_hero=True, smooth_frames=0, color_match="off"):
        frames, report = concat_segments(segment_a, segment_b, drop_shared_hero, smooth_frames, color_match,
                                         node="AP_FLFChainConcat")
        return (frames, json.dumps(report, indent=2))


def _unit(default: float, tip: str) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.005, "tooltip": tip})


def _zoom(default: float, tip: str) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.01, "max": 16.0, "step": 0.01, "tooltip": tip})


class HeldFramePush:
    """A still keyframe -> a clip with a continuous, sub-pixel zoom and pan."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The still keyframe (one image)."}),
                "duration_s": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 600.0, "step": 0.01, "tooltip": (
                    "Clip duration in seconds; the clip has round(duration_s x fps) frames.")}),
                "fps": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip": (
                    "Delivery frame rate: the clip is rendered directly at it (no retime). Also an output, "
                    "to wire into Create Video.")}),
                "width": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 2, "tooltip": (
                    "Output width in pixels; 0 = the still's width.")}),
                "height": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 2, "tooltip": (
                    "Output height in pixels; 0 = the still's height.")}),
                "zoom_start": _zoom(1.0, "Zoom on the first frame. 1 = the still just covers the output frame; "
                                         "2 = twice as close. Below 1 the still no longer covers the frame (black "
                                         "outside)."),
                "zoom_end": _zoom(1.15, "Zoom on the last frame (interpolated geometrically: constant apparent speed)."),
                "center_x_start": _unit(0.5, "Horizontal centre of the view on the first frame, 0..1 across the still."),
                "center_y_start": _unit(0.5, "Vertical centre of the view on the first frame, 0..1 down the still."),
                "center_x_end": _unit(0.5, "Horizontal centre of the view on the last frame, 0..1 across the still."),
                "center_y_end": _unit(0.5, "Vertical centre of the view on the last frame, 0..1 down the still."),
                "easing": (list(EASINGS), {"default": "ease_in_out", "tooltip": (
                    "linear: constant speed; ease_in_out: starts and ends at rest ((1 - cos(pi t)) / 2).")}),
                "sampling": (list(SAMPLINGS), {"default": "bicubic", "tooltip": (
                    "bicubic (Catmull-Rom): sharper; bilinear: softer. Both sample the exact sub-pixel position "
                    "and antialias reductions.")}),
            },
            "optional": budget_input(),
        }

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    OUTPUT_TOOLTIPS = (
        "round(duration_s x fps) frames at width x height.",
        "The fps input, to wire into Create Video.",
    )
    FUNCTION = "push"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Ken Burns push for held-frame shots: the still becomes round(duration_s x fps) frames with a zoom "
        "(zoom_start -> zoom_end) and a pan (centre start -> end) under linear or ease-in-out easing. The "
        "transform is continuous and sampled at exact sub-pixel positions (no 1-pixel jitter, unlike ffmpeg "
        "zoompan); reductions are antialiased. At zoom 1 the still is scaled to cover the output frame, which "
        "may have another size and aspect than the still (e.g. 768x1344 -> 720x1280); the view is kept inside "
        "the still."
    )

    def push(self, image, duration_s, fps, width, height, zoom_start, zoom_end, center_x_start, center_y_start,
             center_x_end, center_y_end, easing, sampling, memory_budget_mb=0):
        frames = held_frame_push(
            image, duration_s, fps, width, height, zoom_start, zoom_end,
            (center_x_start, center_y_start), (center_x_end, center_y_end), easing, sampling,
            node="AP_HeldFramePush", progress=progress_callback(),
            budget=budget(memory_budget_mb, getattr(image, "device", None)),
        )
        return (frames, float(fps))


NODE_CLASS_MAPPINGS = {
    "AP_FLFSegmentPlan": FLFSegmentPlan,
    "AP_FLFChainConcat": FLFChainConcat,
    "AP_HeldFramePush": HeldFramePush,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AP_FLFSegmentPlan": "FLF Segment Plan (AP)",
    "AP_FLFChainConcat": "FLF Chain Concat (AP)",
    "AP_HeldFramePush": "Held Frame Push (AP)",
}
