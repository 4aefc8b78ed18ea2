"""The frame gates of the ``anime_pipeline/quality`` family (artifact, temporal, keyframe
fidelity, seam) and the helpers every gate node shares."""

from __future__ import annotations

import logging

from ...core.contracts import GateResult, MotionLabels
from ...core.quality import artifacts, fidelity, report, seam, temporal
from ...core.validate import InputError, check_images, check_positive
from .._progress import progress_callback

log = logging.getLogger("anime_pipeline")

CATEGORY = "anime_pipeline/quality"
GATE = "AP_GATE_RESULT"
LABELS = "AP_MOTION_LABELS"
GATE_OUTPUTS = ("IMAGE", GATE, "STRING")
GATE_OUTPUT_NAMES = ("frames", "result", "result_json")
GATE_OUTPUT_TIPS = (
    "The input frames, unchanged (wire the rest of the graph from here or from AP_QualityReport).",
    "Pass/fail, metrics, thresholds and failed frames; wire into AP_QualityReport.",
    "The same result as JSON.",
)
_FRAMES_TIP = "The clip as an IMAGE batch; passed through unchanged."
_A, _T, _F, _S = (artifacts.ArtifactThresholds(), temporal.TemporalThresholds(), fidelity.FidelityThresholds(),
                  seam.SeamThresholds())


def _float(default: float, lo: float, hi: float, step: float, tip: str) -> tuple:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tip})


def _outputs(result: GateResult, frames) -> tuple:
    level = logging.INFO if result.passed else logging.WARNING
    log.log(level, "anime_pipeline %s gate: %s %s", result.name, "passed" if result.passed else "FAILED",
            "; ".join(result.reasons))
    return (frames, result, report.result_json(result))


def _flow_frames(frames, node: str):
    frames = check_images(frames, "frames", node=node, min_frames=2)
    try:
        temporal.check_flow_size(frames.shape[1], frames.shape[2])
    except ValueError as exc:
        raise InputError("frames", str(exc), node) from None
    return frames


def _thresholds(cls, node: str, **values):
    return cls(**{k: check_positive(v, k, node=node, allow_zero=True) for k, v in values.items()})


class ArtifactGate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": _FRAMES_TIP}),
            "black_fraction": _float(_A.black_fraction, 0.5, 1.0, 0.005, (
                "A frame is black when this share of its pixels has luma < 0.1 (ffmpeg blackdetect's pic_th). "
                "Darkest real WAN frame measured: 0.77.")),
            "min_luma_std": _float(_A.min_luma_std, 0.0, 0.5, 0.001, (
                "A frame is blank (flat, collapsed decode) when its luma standard deviation (0..1) is below "
                "this. Lowest real WAN frame measured: 0.10.")),
            "max_exposure_jump": _float(_A.max_exposure_jump, 0.0, 5.0, 0.01, (
                "Blown/crushed: |log| of a frame's mean luma over its neighbours' median (+-4 frames). "
                "Real WAN clips reached 0.16 (neon flashes); +1 stop measured >= 0.18.")),
            "max_clipped_increase": _float(_A.max_clipped_increase, 0.0, 1.0, 0.01, (
                "Blown/crushed: share of clipped pixels (luma >= 250/255 or <= 5/255) allowed above the clip's "
                "median share. Dark real clips vary by up to 0.15.")),
            "min_sharpness_ratio": _float(_A.min_sharpness_ratio, 0.0, 1.0, 0.01, (
                "Blurred: Laplacian variance below this x its neighbours' median. Real WAN clips measured >= "
                "0.70; a Gaussian blur of sigma 1 px gives <= 0.49.")),
            "min_sharpness": _float(_A.min_sharpness, 0.0, 1.0, 0.0001, (
                "Soft: absolute Laplacian variance (luma 0..1, analysis copy) below this; catches clips "
                "that are soft throughout. Softest real WAN frame measured: 0.0003.")),
            "frozen_motion": _float(_A.frozen_motion, 0.0, 255.0, 0.1, (
                "Frozen clip: every interval's largest 8x8-block luma change (0-255, 128 px thumbnails) stays "
                "below this. A still frame with decode noise measured 0.7; the slowest real clip 8.8.")),
            "expect_motion": ("BOOLEAN", {"default": True, "tooltip": (
                "Motion was asked for: a frozen clip fails. Turn off for intentionally still shots.")}),
        }}

    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = GATE_OUTPUTS, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Per-frame artifacts: NaN/inf, black or blank frames, blown or crushed exposure, blur, and a frozen clip. "
        "Frames are judged against their neighbours, so lighting and focus may drift through a shot. Far faster "
        "than what it guards (hundreds of 720p frames per second on CPU).")

    def check(self, frames, black_fraction, min_luma_std, max_exposure_jump, max_clipped_increase,
              min_sharpness_ratio, min_sharpness, frozen_motion, expect_motion):
        node = "AP_ArtifactGate"
        frames = check_images(frames, "frames", node=node, finite=False)
        th = _thresholds(artifacts.ArtifactThresholds, node, black_fraction=black_fraction,
                         min_luma_std=min_luma_std, max_exposure_jump=max_exposure_jump,
                         max_clipped_increase=max_clipped_increase, min_sharpness_ratio=min_sharpness_ratio,
                         min_sharpness=min_sharpness, frozen_motion=frozen_motion)
        return _outputs(artifacts.artifact_gate(frames, th, expect_motion=bool(expect_motion)), frames)


class TemporalGate:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": _FRAMES_TIP + " At least 2 frames."}),
                "warp_error_floor": _float(_T.warp_error_floor, 0.0, 1.0, 0.001, (
                    "An interval fails when its flow-compensated warp error (mean abs RGB residual, 0..1, after "
                    "a global gain) exceeds max(this, warp_error_k x the clip's median). Largest on real WAN "
                    "clips: 0.063 (a lighting change).")),
                "warp_error_k": _float(_T.warp_error_k, 1.0, 100.0, 0.1, (
                    "Relative part of the interval limit (x the clip's median warp error).")),
                "max_median_warp_error": _float(_T.max_median_warp_error, 0.0, 1.0, 0.001, (
                    "The clip fails when its median warp error exceeds this (unstable throughout). Real WAN clips: "
                    "<= 0.027; the flickering wan2.1_flf2v_720_f16 template: 0.035.")),
                "max_flicker": _float(_T.max_flicker, 0.0, 1.0, 0.001, (
                    "Brightness flicker: a frame brighter (or darker) than both neighbours after motion "
                    "compensation, as a log ratio (0.016 = 1.6 %). Real WAN clips: <= 1.4 %; +4 % on every 4th "
                    "frame measured >= 3 %.")),
            },
            "optional": {
                "labels": (LABELS, {"tooltip": (
                    "Cut/hold/motion labels from AP_MotionGate: cut intervals are skipped. Without them the pack's "
                    "cut rule finds the cuts.")}),
            },
        }

    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = GATE_OUTPUTS, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Flicker and instability as flow-compensated warping error (DIS flow, occlusions masked), split into "
        "structure (warp error after a global gain) and brightness (pulses of the gain). Raw frame-to-frame "
        "SSIM mixes motion with flicker; this does not.")

    def check(self, frames, warp_error_floor, warp_error_k, max_median_warp_error, max_flicker, labels=None):
        node = "AP_TemporalGate"
        frames = _flow_frames(frames, node)
        if labels is not None and not isinstance(labels, MotionLabels):
            raise InputError("labels", f"expected {LABELS} from AP_MotionGate, got {type(labels).__name__}", node)
        if labels is not None and labels.n_frames != frames.shape[0]:
            raise InputError("labels", f"describe {labels.n_frames} frames but frames has {frames.shape[0]}", node)
        th = _thresholds(temporal.TemporalThresholds, node, warp_error_floor=warp_error_floor,
                         warp_error_k=warp_error_k, max_median_warp_error=max_median_warp_error,
                         max_flicker=max_flicker)
        return _outputs(temporal.temporal_gate(frames, th, labels, progress=progress_callback()), frames)


def _single_image(image, name: str, node: str):
    if image is None:
        return None
    image = check_images(image, name, node=node)
    if image.shape[0] != 1:
        raise InputError(name, f"expected one keyframe, got a batch of {image.shape[0]} (pick one with "
                               "ImageFromBatch)", node)
    return image


class KeyframeFidelityGate:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": _FRAMES_TIP}),
                "min_ssim": _float(_F.min_ssim, 0.0, 1.0, 0.01, (
                    "Luma SSIM (half resolution) of the clip's end frame vs its keyframe must reach this. "
                    "JPEG 85 + blur round trips measured >= 0.98; a 5 % shift or another frame <= 0.61.")),
                "max_mean_shift": _float(_F.max_mean_shift, 0.0, 255.0, 0.1, (
                    "Largest per-channel mean difference (0-255). Round trips measured <= 0.4; a delta-E 3 drift "
                    ">= 3.3.")),
                "max_delta_e": _float(_F.max_delta_e, 0.0, 100.0, 0.1, (
                    "Mean CIE76 delta-E of 16 px block means. Round trips measured <= 0.44; delta-E 3 drifts "
                    ">= 2.0.")),
            },
            "optional": {
                "start_image": ("IMAGE", {"tooltip": "The start keyframe the clip was conditioned on (one image)."}),
                "end_image": ("IMAGE", {"tooltip": "The end keyframe the clip was conditioned on (one image)."}),
            },
        }

    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = GATE_OUTPUTS, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "First-last-frame fidelity: the clip's first frame vs start_image and last frame vs end_image (SSIM of "
        "luma, mean colour shift, delta-E in Lab). Catches drift and a silently dropped end keyframe. Keyframes "
        "of another size are resized for the comparison (recorded in the result).")

    def check(self, frames, min_ssim, max_mean_shift, max_delta_e, start_image=None, end_image=None):
        node = "AP_KeyframeFidelityGate"
        frames = check_images(frames, "frames", node=node)
        start = _single_image(start_image, "start_image", node)
        end = _single_image(end_image, "end_image", node)
        if start is None and end is None:
            raise InputError("start_image", "connect start_image, end_image or both (the keyframes to compare "
                                            "with)", node)
        th = _thresholds(fidelity.FidelityThresholds, node, min_ssim=min_ssim, max_mean_shift=max_mean_shift,
                         max_delta_e=max_delta_e)
        return _outputs(fidelity.keyframe_fidelity_gate(frames, start, end, th), frames)


class SeamGate:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": _FRAMES_TIP + " The concatenated segments."}),
                "seam_index": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": (
                    "Index of the first frame after the junction (AP_FLFChainConcat's seam_index). 0: take the "
                    "seam(s) from seam_report.")}),
                "warp_error_k": _float(_S.warp_error_k, 1.0, 100.0, 0.1, (
                    "The seam's warp error may be at most max(warp_error_floor, this x its neighbours' median "
                    "(+-4 intervals)). Real WAN clips split mid-shot: <= 2.6x.")),
                "warp_error_floor": _float(_S.warp_error_floor, 0.0, 1.0, 0.001, (
                    "Absolute allowance of the warp error limit, for very steady clips.")),
                "max_luma_jump": _float(_S.max_luma_jump, 0.0, 255.0, 0.1, (
                    "Largest allowed luma step at the seam beyond its neighbours' (median residual after motion "
                    "compensation, 0-255). Real seams measured <= 1.06; the 3-4/255 jumps to catch >= 1.63.")),
                "max_chroma_jump": _float(_S.max_chroma_jump, 0.0, 255.0, 0.1, (
                    "Largest allowed Cb/Cr step at the seam beyond its neighbours' (0-255). Real intervals "
                    "measured <= 1.6.")),
            },
            "optional": {
                "seam_report": ("STRING", {"forceInput": True, "tooltip": (
                    "The seam_report JSON of AP_FLFChainConcat (its seam_index is used and its metrics recorded).")}),
            },
        }

    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = GATE_OUTPUTS, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "The junction of two concatenated segments must not show: not a cut, warp error within k x its "
        "neighbours', and no luma/chroma step beyond its neighbours' (motion compensated).")

    def check(self, frames, seam_index, warp_error_k, warp_error_floor, max_luma_jump, max_chroma_jump,
              seam_report=None):
        node = "AP_SeamGate"
        frames = _flow_frames(frames, node)
        info = []
        if seam_report is not None and seam_report.strip():
            try:
                info = seam.parse_seam_info(seam_report)
            except ValueError as exc:
                raise InputError("seam_report", str(exc), node) from None
        seams = [rec["seam_index"] for rec in info]
        if seam_index:
            if seams and seam_index not in seams:
                raise InputError("seam_index", f"{seam_index} is not a seam of seam_report ({seams}); set 0 to use "
                                               "seam_report", node)
            seams = [seam_index]
        if not seams:
            raise InputError("seam_index", "no seam given: set seam_index or connect seam_report", node)
        try:
            seam.check_seams(seams, frames.shape[0])
        except ValueError as exc:
            raise InputError("seam_index", str(exc), node) from None
        th = _thresholds(seam.SeamThresholds, node, warp_error_k=warp_error_k, warp_error_floor=warp_error_floor,
                         max_luma_jump=max_luma_jump, max_chroma_jump=max_chroma_jump)
        return _outputs(seam.seam_gate(frames, seams, th, info), frames)
