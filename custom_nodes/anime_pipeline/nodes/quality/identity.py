"""``AP_IdentityGate``: frames against reference images of the character (CLIP vision or
insightface ArcFace)."""

from __future__ import annotations

from pathlib import Path

from ...core.quality import identity
from ...core.validate import InputError, check_images, check_positive
from .gates import CATEGORY, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS, GATE_OUTPUTS, _float, _outputs

FACE_THRESHOLD = 0.40
CLIP_VISION_THRESHOLD = 0.80
NODE = "AP_IdentityGate"


def insightface_root() -> Path:
    """``<ComfyUI models>/insightface`` (``FaceAnalysis`` looks in ``<root>/models/<pack>/``)."""
    import folder_paths

    return Path(folder_paths.models_dir) / "insightface"


class IdentityGate:
    def __init__(self):
        self._face_apps = {}  # (root, pack name) -> FaceAnalysis; loading takes seconds

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip as an IMAGE batch; passed through unchanged."}),
                "references": ("IMAGE", {"tooltip": (
                    "One or more reference images of the character (a batch; e.g. front, 3/4 and side views). "
                    "Each frame is scored against its best-matching reference.")}),
                "method": (list(identity.METHODS), {"default": identity.CLIP_VISION, "tooltip": (
                    "clip_vision: CLIP-vision embeddings (needs the clip_vision input; works on anime). face: "
                    "insightface ArcFace on detected faces (real-photo faces; anime faces are usually not "
                    "detected, which is reported as no_face).")}),
                "every": ("INT", {"default": 4, "min": 1, "max": 1000, "tooltip": (
                    "Check every k-th frame (0, k, 2k, ...) and always the clip's last frame (the end keyframe and "
                    "the seam to the next shot).")}),
                "clip_vision_threshold": _float(CLIP_VISION_THRESHOLD, -1.0, 1.0, 0.01, (
                    "clip_vision: lowest cosine similarity of a frame's embedding to the best reference. NOT "
                    "measured here (no CLIP weights offline): calibrate on your own passes and retakes.")),
                "face_threshold": _float(FACE_THRESHOLD, -1.0, 1.0, 0.01, (
                    "face: lowest ArcFace cosine similarity. 0.40 follows published verification thresholds "
                    "(DeepFace ArcFace 0.32, buffalo_l forks 0.45); 0.70 rejects many good generations. Not "
                    "measured here (no insightface weights offline).")),
                "max_no_face_fraction": _float(0.0, 0.0, 1.0, 0.01, (
                    "face: share of sampled frames allowed to have no detected face (character turned away) "
                    "before the outcome is no_face. No-face frames are always reported.")),
                "insightface_model": ("STRING", {"default": "buffalo_l", "tooltip": (
                    "face: insightface model pack, loaded from ComfyUI/models/insightface/models/<name>/ "
                    "(never downloaded).")}),
            },
            "optional": {
                "clip_vision": ("CLIP_VISION", {"tooltip": (
                    "From a core Load CLIP Vision node (e.g. clip_vision_h.safetensors); needed by clip_vision.")}),
                "character_mask": ("MASK", {"tooltip": (
                    "Optional mask of the character (one for all frames, or one per frame): frames are cropped "
                    "to its bounding box before embedding.")}),
            },
        }

    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = GATE_OUTPUTS, GATE_OUTPUT_NAMES, GATE_OUTPUT_TIPS
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Does the character still look like its references? Every k-th frame and the last frame (optionally "
        "cropped to a mask) are embedded and compared by cosine similarity: CLIP vision (anime) or insightface "
        "ArcFace (faces). 'No face found' is its own outcome, never a silent pass.")

    def check(self, frames, references, method, every, clip_vision_threshold, face_threshold,
              max_no_face_fraction, insightface_model, clip_vision=None, character_mask=None):
        frames = check_images(frames, "frames", node=NODE)
        references = check_images(references, "references", node=NODE)
        if method not in identity.METHODS:
            raise InputError("method", f"must be one of {list(identity.METHODS)}, got {method!r}", NODE)
        if int(every) < 1:
            raise InputError("every", f"must be >= 1, got {every}", NODE)
        mask = self._mask(character_mask, frames)
        if method == identity.CLIP_VISION:
            if clip_vision is None:
                raise InputError("clip_vision", "method 'clip_vision' needs a CLIP_VISION model: connect a Load "
                                                "CLIP Vision node (e.g. clip_vision_h.safetensors)", NODE)
            embed = identity.clip_vision_embedder(clip_vision)
            threshold = clip_vision_threshold
        else:
            embed = identity.face_embedder(self._face_app(insightface_model))
            threshold = face_threshold
        th = identity.IdentityThresholds(
            min_similarity=float(threshold),
            max_no_face_fraction=check_positive(max_no_face_fraction, "max_no_face_fraction", node=NODE,
                                                allow_zero=True))
        try:
            result = identity.identity_gate(frames, references, embed, method, th, every=int(every), mask=mask)
        except identity.NoReferenceFace as exc:
            raise InputError("references", str(exc), NODE) from None
        return _outputs(result, frames)

    @staticmethod
    def _mask(mask, frames):
        if mask is None:
            return None
        m = mask if mask.ndim == 3 else mask[None]
        if m.shape[1:] != frames.shape[1:3] or m.shape[0] not in (1, frames.shape[0]):
            raise InputError("character_mask", f"shape {list(m.shape)} does not fit frames {list(frames.shape[:3])} "
                                               "(one mask of the frame size, or one per frame)", NODE)
        return m

    def _face_app(self, name: str):
        name = name.strip()
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InputError("insightface_model", f"expected a model pack folder name like 'buffalo_l', got {name!r}",
                             NODE)
        root = insightface_root()
        key = (str(root), name)
        if key not in self._face_apps:
            try:
                self._face_apps[key] = identity.load_face_analysis(root, name)
            except identity.IdentityModelError as exc:
                raise InputError("insightface_model", str(exc), NODE) from None
        return self._face_apps[key]
