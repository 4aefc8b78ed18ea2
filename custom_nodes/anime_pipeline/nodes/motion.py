"""Nodes of the ``anime_pipeline/motion`` family: cut / hold / motion gating and
anime-safe frame-rate conversion."""

from __future__ import annotations

import functools
import json
import math
import os

from ..core import motion as gating
from ..core.contracts import LABELS, MotionLabels
from ..core.interpolate import FlowInterpolator
from ..core.rife import LAYOUT_NAMES, RifeFormatError, RifeInterpolator, load_ifnet
from ..core.retime import GUARD_THRESHOLD, MODES, Phase, phase_positions, retime, summarize
from ..core.validate import InputError, check_budget, check_images, check_positive, frames_bytes
from ._budget import budget, budget_input
from ._progress import progress_callback

CATEGORY = "anime_pipeline/motion"
LABELS_TYPE = "AP_MOTION_LABELS"
INTERPOLATOR_TYPE = "AP_INTERPOLATOR"
INTERPOLATION_FOLDER = "interpolation"
RIFE_SCALES = ["1.0", "0.5", "0.25", "2.0"]  # strings: a combo of the scales the padding supports
DEFAULTS = gating.Thresholds()


def _finite(values):
    """Scores as JSON numbers (NaN -> null: the score was not evaluated)."""
    return [round(v, 4) if math.isfinite(v) else None for v in values]


def gate_summary(result: MotionLabels) -> dict:
    """The JSON report of AP_MotionGate (its ``report`` output)."""
    return {
        "frames": result.n_frames,
        "intervals": len(result.labels),
        "counts": {lab: result.labels.count(lab) for lab in LABELS},
        "cuts": result.indices("cut"),
        "flash_frames": gating.flash_frames(result),
        "thresholds": result.thresholds,
        "labels": list(result.labels),
        "scores": {name: _finite(vals) for name, vals in result.scores.items()},
    }


class MotionGate:
    """Label every interval between consecutive frames as cut, hold or motion."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip as an IMAGE batch (at least 2 frames)."}),
                "cut_color": ("FLOAT", {"default": DEFAULTS.cut_color, "min": 0.0, "max": 255.0, "step": 0.1,
                                        "tooltip": (
                    "Cut test 1: colour_shift (earth mover's distance of the Y/U/V histograms, 8-bit levels) must "
                    "reach this. Lower finds cuts between similar-looking shots; motion rarely exceeds 5.")}),
                "cut_residual": ("FLOAT", {"default": DEFAULTS.cut_residual, "min": 0.0, "max": 2.0, "step": 0.01,
                                           "tooltip": (
                    "Cut test 2: 'unexplained' (what optical flow cannot explain, relative to the frames' "
                    "contrast; ~0 for motion, ~1 for unrelated frames) must reach this.")}),
                "hold_threshold": ("FLOAT", {"default": DEFAULTS.hold_threshold, "min": 0.0, "max": 255.0,
                                             "step": 0.05, "tooltip": (
                    "An interval is a hold (same drawing) when its detail_change (largest 8x8-block change of "
                    "fine detail, 8-bit levels) stays below this. Fits lossless and codec-compressed sources.")}),
                "adaptive_holds": ("BOOLEAN", {"default": DEFAULTS.adaptive_holds, "tooltip": (
                    "Noise-adaptive hold detection for generated video whose held drawings 'boil': the threshold "
                    "rises with the clip's noise floor and sub-pixel whole-frame jitter is ignored. Leave off for "
                    "clips without holds: there it labels the slowest motion as hold more often.")}),
                "adaptive_factor": ("FLOAT", {"default": DEFAULTS.adaptive_factor, "min": 1.0, "max": 20.0,
                                              "step": 0.1, "tooltip": (
                    "Adaptive mode only: hold threshold = max(hold_threshold, adaptive_factor x noise floor), the "
                    "factor stated for 320 px frames and scaled by sqrt(2 / downscale) for larger ones (x0.5 at "
                    "1280x720; the summary reports adaptive_factor_effective).")}),
            },
            "optional": {
                "labels_given": ("STRING", {"default": "", "forceInput": True, "tooltip": (
                    "Labels decided elsewhere (e.g. once for a whole video that is retimed in chunks, so every "
                    "chunk uses the same labels): one letter per interval, c = cut, h = hold, m = motion. When set, "
                    "nothing is measured and the thresholds are not used; empty = classify the frames.")}),
            },
        }

    RETURN_TYPES = (LABELS_TYPE, "STRING")
    RETURN_NAMES = ("labels", "summary")
    OUTPUT_TOOLTIPS = (
        "One label per interval (frame i -> i+1) with its scores; wire into AP_AnimeRetime.",
        "JSON report: counts, cut indices, flash frames (a cut on both sides), the thresholds used "
        "(hold_limit = the effective hold threshold), the labels and every score (null = not evaluated).",
    )
    FUNCTION = "gate"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Classify each interval between consecutive frames as cut (new shot or flash: never blend across), hold "
        "(the same drawing shown again: anime on twos/threes) or motion (interpolate). Runs on a 160 px analysis "
        "thumbnail. Defaults were measured on ground truth built from real clips; on held-out clips cut "
        "precision/recall >= 0.98 and, on clean or compressed footage, hold precision/recall >= 0.99. Turn on "
        "adaptive_holds for generated video that imitates limited animation."
    )

    def gate(self, frames, cut_color, cut_residual, hold_threshold, adaptive_holds=False,
             adaptive_factor=DEFAULTS.adaptive_factor, labels_given=""):
        node = "AP_MotionGate"
        frames = check_images(frames, "frames", node=node, min_frames=2)
        if labels_given and labels_given.strip():
            try:
                result = MotionLabels.from_letters(labels_given, frames.shape[0])
            except ValueError as exc:
                raise InputError("labels_given", str(exc), node) from None
            return (result, json.dumps(gate_summary(result)))
        thresholds = gating.Thresholds(
            cut_color=check_positive(cut_color, "cut_color", node=node, allow_zero=True),
            cut_residual=check_positive(cut_residual, "cut_residual", node=node, allow_zero=True),
            hold_threshold=check_positive(hold_threshold, "hold_threshold", node=node, allow_zero=True),
            adaptive_holds=bool(adaptive_holds),
            adaptive_factor=check_positive(adaptive_factor, "adaptive_factor", node=node),
        )
        result = gating.classify(frames, thresholds, progress=progress_callback())
        return (result, json.dumps(gate_summary(result)))


class AnimeRetime:
    """Change the frame rate: copy on holds and cuts, interpolate only on motion."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip as an IMAGE batch."}),
                "fps_in": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 1000.0, "step": 0.001, "tooltip": (
                    "Frame rate of the input clip (WAN renders 16).")}),
                "fps_out": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 1000.0, "step": 0.001, "tooltip": (
                    "Wanted frame rate; any ratio, up or down (16->24, 24->48, 24->30, 30->24 ...).")}),
                "mode": (list(MODES), {"default": "keep_holds", "tooltip": (
                    "keep_holds: held drawings stay held (the limited-animation look), only motion is "
                    "interpolated. smooth: held drawings are retimed as motion, so on-twos becomes on-ones.")}),
            },
            "optional": {
                "labels": (LABELS_TYPE, {"tooltip": (
                    "Cut/hold/motion labels from AP_MotionGate for these frames; computed with the default "
                    "thresholds when not connected.")}),
                "interpolator": (INTERPOLATOR_TYPE, {"tooltip": (
                    "A learned interpolator from Load Interpolator (AP) (RIFE v4), called only on motion "
                    "intervals at the exact phases needed; the optical-flow (DIS) interpolator when not "
                    "connected.")}),
                "frame_offset": ("INT", {"default": 0, "min": 0, "max": 10**9, "forceInput": True, "tooltip": (
                    "Chunked retime of a long clip: index, in the long clip, of this chunk's first frame. With "
                    "output_offset the chunk gives exactly the long clip's output frames (0 = a clip on its own).")}),
                "output_offset": ("INT", {"default": 0, "min": 0, "max": 10**9, "forceInput": True, "tooltip": (
                    "Chunked retime: index, in the long clip's output, of this chunk's first output frame; it sits "
                    "at source frame output_offset x fps_in / fps_out - frame_offset of this chunk.")}),
                "max_outputs": ("INT", {"default": 0, "min": 0, "max": 10**9, "forceInput": True, "tooltip": (
                    "Stop after this many output frames (0 = every frame up to the chunk's last one).")}),
                "fallback_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "forceInput": True,
                                                 "tooltip": (
                    f"Bad mid-frame fallback: an interpolated frame whose error against its two sources "
                    f"((|m-a| + |m-b|) / |a-b|, ~0.5-1 for a good in-between) passes this is replaced by a copy of "
                    f"the nearer source and listed in the summary's 'replaced'. 0 = off; {GUARD_THRESHOLD} is "
                    f"calibrated on real clips (good frames stayed under 1.2, broken ones scored 34+).")}),
                "interpolated_only": ("BOOLEAN", {"default": False, "forceInput": True, "tooltip": (
                    "Return only the interpolated frames, in order (a replaced one as its copy), not the copies of "
                    "source frames: for a caller that holds the source frames and places the copies itself (the "
                    "driver's enhance command). The summary still describes every output frame.")}),
                "fast_flow": ("BOOLEAN", {"default": False, "forceInput": True, "tooltip": (
                    "The optical-flow interpolator with one flow estimate (192 px) instead of two averaged "
                    "(192 + 128 px): about half the warping work, a little less robust on hard motion. Ignored "
                    "when an interpolator is connected.")}),
                **budget_input(),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "summary")
    OUTPUT_TOOLTIPS = (
        "The retimed clip: floor((n-1) x fps_out / fps_in) + 1 frames.",
        "The output frame rate (= fps_out); wire it into CreateVideo's fps.",
        "JSON report: frame counts, exact ratio, how many frames were copied or interpolated, notes.",
    )
    FUNCTION = "retime"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Anime-safe frame-rate conversion. Output frame k shows source time k x fps_in / fps_out: copies on "
        "holds, copies of the nearer frame across cuts (never a blend of two shots), and interpolation on "
        "motion: bidirectional optical flow (OpenCV DIS, no model weights) or, when an interpolator is connected, "
        "a learned model (RIFE v4) at the exact phases. Exact rational timing, so long 16 -> 24 conversions "
        "never drift."
    )

    def retime(self, frames, fps_in, fps_out, mode, labels=None, interpolator=None, frame_offset=0,
               output_offset=0, max_outputs=0, fallback_threshold=0.0, interpolated_only=False, fast_flow=False,
               memory_budget_mb=0):
        node = "AP_AnimeRetime"
        frames = check_images(frames, "frames", node=node, min_frames=1)
        fps_in = check_positive(fps_in, "fps_in", node=node)
        fps_out = check_positive(fps_out, "fps_out", node=node)
        if mode not in MODES:
            raise InputError("mode", f"must be one of {list(MODES)}, got {mode!r}", node)
        n = frames.shape[0]
        if labels is None:
            labels = gating.classify(frames) if n > 1 else MotionLabels(labels=(), n_frames=1)
        elif not isinstance(labels, MotionLabels):
            raise InputError("labels", f"expected {LABELS_TYPE} from AP_MotionGate, got {type(labels).__name__}", node)
        elif labels.n_frames != n:
            raise InputError("labels", f"describe {labels.n_frames} frames but frames has {n}; gate the same "
                                       "clip that is retimed", node)
        try:
            phase = Phase(int(frame_offset), int(output_offset), int(max_outputs))
            positions = phase_positions(n, fps_in, fps_out, phase)
        except ValueError as exc:
            raise InputError("output_offset", str(exc), node) from None
        if not positions:
            raise InputError("output_offset", f"no output frame of the long clip from {output_offset} on falls "
                                              f"inside this chunk's {n} frames", node)
        guard = check_positive(fallback_threshold, "fallback_threshold", node=node, allow_zero=True)
        _, h, w, c = frames.shape
        limit, source = budget(memory_budget_mb)
        check_budget(frames_bytes(len(positions) + n, h, w, c), limit,  # the output and the float copy of the input
                     f"{len(positions)} output frames of {w}x{h} (and the {n} input frames)", "fps_out", node=node,
                     budget_from=source)
        run = functools.partial(retime, frames, fps_in, fps_out, labels, mode=mode, progress=progress_callback(),
                                phase=phase, guard=guard, interpolated_only=bool(interpolated_only))
        if interpolator is None:
            out, steps = run(interpolator=FlowInterpolator(extra_flow_sizes=()) if fast_flow else FlowInterpolator())
        elif not isinstance(interpolator, RifeInterpolator):
            raise InputError("interpolator", f"expected {INTERPOLATOR_TYPE} from AP_LoadInterpolator, got "
                                             f"{type(interpolator).__name__}", node)
        else:
            import comfy.model_management as mm

            with interpolator.on(mm.get_torch_device()):
                out, steps = run(interpolator=interpolator)
        summary = summarize(steps, n, fps_in, fps_out, mode, [s.k for s in steps if s.replaced])
        if interpolator is not None:
            summary["interpolator"] = interpolator.label
        return (out, fps_out, json.dumps(summary))


def register_interpolation_folder() -> bool:
    """Register ``models/interpolation`` with ComfyUI's ``folder_paths`` (kept after any paths an
    ``extra_model_paths.yaml`` gave it); False outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return False
    paths, exts = folder_paths.folder_names_and_paths.get(INTERPOLATION_FOLDER, ([], set()))
    default = os.path.join(folder_paths.models_dir, INTERPOLATION_FOLDER)
    folder_paths.folder_names_and_paths[INTERPOLATION_FOLDER] = (
        [default, *(p for p in paths if p != default)], set(exts) | set(folder_paths.supported_pt_extensions))
    return True


class LoadInterpolator:
    """Load a RIFE v4 checkpoint from models/interpolation."""

    @classmethod
    def INPUT_TYPES(cls):
        try:
            import folder_paths

            names = folder_paths.get_filename_list(INTERPOLATION_FOLDER)
        except (ImportError, KeyError):
            names = []
        return {
            "required": {
                "model_name": (names, {"tooltip": (
                    "A RIFE v4 checkpoint in models/interpolation (v4.6, or v4.7-v4.9 such as rife47.pth / "
                    "rife49.pth; the layout is detected from the keys). ComfyUI-Frame-Interpolation users can "
                    "list its ckpts/rife folder under 'interpolation' in extra_model_paths.yaml.")}),
            },
            "optional": {
                "precision": (["auto", "fp32", "fp16"], {"default": "auto", "tooltip": (
                    "auto: fp16 on GPUs that run it well, fp32 otherwise (always fp32 on CPU).")}),
                "scale": (RIFE_SCALES, {"default": "1.0", "tooltip": (
                    "Resolution the flow is estimated at, relative to the frame: 1.0 up to ~1080p, 0.5 for 4K "
                    "(RIFE's own advice).")}),
            },
        }

    RETURN_TYPES = (INTERPOLATOR_TYPE,)
    RETURN_NAMES = ("interpolator",)
    OUTPUT_TOOLTIPS = ("The learned interpolator; wire it into Anime Retime (AP)'s interpolator input.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Load a RIFE v4 frame-interpolation checkpoint (v4.6 or the anime-tuned v4.7-v4.9 layouts, detected "
        "from the keys; every key and shape is checked before loading) from models/interpolation. Nothing is "
        "downloaded. Anime Retime (AP) calls it only on motion intervals, at the exact phases it needs."
    )

    def load(self, model_name, precision="auto", scale="1.0"):
        import comfy.model_management as mm
        import comfy.utils
        import folder_paths
        import torch

        node = "AP_LoadInterpolator"
        path = folder_paths.get_full_path(INTERPOLATION_FOLDER, model_name)
        if path is None:
            folders = folder_paths.get_folder_paths(INTERPOLATION_FOLDER)
            raise InputError("model_name", f"{model_name!r} not found in the interpolation folder(s) {folders}", node)
        if str(scale) not in RIFE_SCALES:
            raise InputError("scale", f"must be one of {RIFE_SCALES}, got {scale!r}", node)
        try:
            state = comfy.utils.load_torch_file(path, safe_load=True)
        except Exception as err:  # a truncated or non-torch file: torch's own message, named
            raise InputError("model_name", f"{model_name!r} could not be read as a checkpoint: {err}", node) from None
        try:
            net = load_ifnet(state, name=model_name)
        except RifeFormatError as err:
            raise InputError("model_name", str(err), node) from None
        device = mm.get_torch_device()
        half = precision == "fp16" or (precision == "auto" and mm.should_use_fp16(device))
        dtype = torch.float16 if half and device.type != "cpu" else torch.float32
        label = f"{LAYOUT_NAMES[net.layout]} ({model_name}, {str(dtype).replace('torch.', '')}, scale {scale})"
        return (RifeInterpolator(net, dtype=dtype, scale=float(scale), label=label),)


register_interpolation_folder()

NODE_CLASS_MAPPINGS = {"AP_MotionGate": MotionGate, "AP_AnimeRetime": AnimeRetime,
                       "AP_LoadInterpolator": LoadInterpolator}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_MotionGate": "Motion Gate (AP)", "AP_AnimeRetime": "Anime Retime (AP)",
                              "AP_LoadInterpolator": "Load Interpolator (AP)"}
