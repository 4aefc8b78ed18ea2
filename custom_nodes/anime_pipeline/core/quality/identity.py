"""Identity gate: does the character still look like the reference?

Every ``every``-th frame and always the clip's last frame (the FLF end keyframe and the
seam to the next shot; see :func:`sampled_frames`), optionally cropped to a character mask,
is embedded and compared with each reference by cosine similarity; a frame's score is its best
match over the references (several references = several angles of one character).
Two embedders:

* ``clip_vision``: ``image_embeds`` of a ComfyUI ``CLIP_VISION`` model
  (``encode_image``); works on anime, where face detectors see nothing. Crops are
  padded to a square first so CLIP's centre crop cannot cut the character off.
* ``face``: insightface ``FaceAnalysis`` (SCRFD detector + ArcFace); the largest
  detected face per image. A frame without a face is a ``no_face`` frame: its own
  outcome, reported, never a pass. Anime faces are usually not detected at all.

Outcomes: ``pass``; ``identity_lost`` (a sampled frame below ``min_similarity``);
``no_face`` (more than ``max_no_face_fraction`` of the sampled frames had no face).
Nothing here imports ComfyUI or insightface at module level; the insightface pack
is loaded from a folder given by the caller and never downloaded.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..contracts import GateResult
from ..imaging import to_uint8

log = logging.getLogger("anime_pipeline")

FACE, CLIP_VISION = "face", "clip_vision"
METHODS = (CLIP_VISION, FACE)
PASS, IDENTITY_LOST, NO_FACE = "pass", "identity_lost", "no_face"
CLIP_BATCH = 16
MASK_MARGIN = 0.1
INSIGHTFACE_PIP = "insightface onnxruntime"

# Embeds a list of RGB images (each ``[H,W,3]`` float 0..1) -> one vector or None (no face) each.
Embedder = Callable[[Sequence[torch.Tensor]], list]


@dataclass(frozen=True)
class IdentityThresholds:
    min_similarity: float
    max_no_face_fraction: float = 0.0


class IdentityModelError(RuntimeError):
    """The identity model cannot be loaded (missing package or model files)."""


class NoReferenceFace(ValueError):
    """A reference image has no detectable face (the face method cannot judge anything)."""


# -- crops -----------------------------------------------------------------------------------------

def mask_crops(images: torch.Tensor, mask: torch.Tensor | None, margin: float = MASK_MARGIN) -> tuple[list, list[int]]:
    """Crop each image to its mask's bounding box (+ ``margin`` of the box size on each side).

    ``mask`` is ``[H,W]``, ``[1,H,W]`` (one mask for all) or ``[B,H,W]``; values > 0.5 count.
    Returns the crops and the indices of images whose mask was empty (kept whole)."""
    if mask is None:
        return [img for img in images], []
    m = mask if mask.ndim == 3 else mask[None]
    crops, empty = [], []
    for i, img in enumerate(images):
        sel = m[i if m.shape[0] > 1 else 0] > 0.5
        ys, xs = torch.nonzero(sel, as_tuple=True)
        if len(ys) == 0:
            crops.append(img)
            empty.append(i)
            continue
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        dy, dx = round((y1 - y0) * margin), round((x1 - x0) * margin)
        h, w = img.shape[:2]
        crops.append(img[max(0, y0 - dy):min(h, y1 + dy), max(0, x0 - dx):min(w, x1 + dx)])
    return crops, empty


def pad_square(image: torch.Tensor, value: float = 0.5) -> torch.Tensor:
    """Pad ``[H,W,3]`` to a centred square with a flat grey border."""
    h, w = image.shape[:2]
    side = max(h, w)
    out = torch.full((side, side, image.shape[2]), value, dtype=image.dtype)
    y, x = (side - h) // 2, (side - w) // 2
    out[y:y + h, x:x + w] = image
    return out


# -- embedders -------------------------------------------------------------------------------------

def clip_vision_embedder(clip_vision) -> Embedder:
    """Embedder from a ComfyUI ``CLIP_VISION`` object (``encode_image(image) -> {"image_embeds"}``)."""

    def embed(images: Sequence[torch.Tensor]) -> list:
        squares = [pad_square(img) for img in images]
        out: list = [None] * len(squares)
        # Chunks hold squares of one size only: each goes to the model as it is, so its
        # embedding does not depend on which other crops share its chunk (resizing a chunk to
        # its largest square made a crop's score change with its neighbours).
        by_side: dict[int, list[int]] = {}
        for i, sq in enumerate(squares):
            by_side.setdefault(sq.shape[0], []).append(i)
        for idx in by_side.values():
            for start in range(0, len(idx), CLIP_BATCH):
                chunk = idx[start:start + CLIP_BATCH]
                embeds = clip_vision.encode_image(torch.stack([squares[i] for i in chunk]))["image_embeds"]
                if len(embeds) != len(chunk):
                    raise RuntimeError(f"CLIP_VISION returned {len(embeds)} image embeddings for {len(chunk)} images")
                for i, e in zip(chunk, embeds, strict=True):
                    out[i] = e.detach().float().cpu().numpy().ravel()
        return out

    return embed


def face_embedder(app) -> Embedder:
    """Embedder from an insightface ``FaceAnalysis`` (``get(bgr_uint8) -> faces``): the
    largest face's normalised ArcFace embedding, or None when no face is found."""

    def embed(images: Sequence[torch.Tensor]) -> list:
        out: list[np.ndarray | None] = []
        for img in images:
            bgr = np.ascontiguousarray(to_uint8(img[None])[0][..., ::-1])
            faces = app.get(bgr)
            if not faces:
                out.append(None)
                continue
            face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
            vec = getattr(face, "normed_embedding", None)
            out.append(np.asarray(vec if vec is not None else face.embedding, dtype=np.float32).ravel())
        return out

    return embed


def load_face_analysis(insightface_root: Path, name: str, det_size: int = 640):
    """Load ``FaceAnalysis(name)`` from ``insightface_root/models/<name>/*.onnx`` (CPU).

    Never downloads: missing files or a missing package raise :class:`IdentityModelError`
    saying exactly what to install or where to put the files."""
    pack_dir = Path(insightface_root) / "models" / name
    if not pack_dir.is_dir() or not any(pack_dir.glob("*.onnx")):
        raise IdentityModelError(
            f"insightface model pack {name!r} not found: expected its .onnx files (detection + recognition, "
            f"e.g. det_10g.onnx and w600k_r50.onnx for buffalo_l) in {pack_dir}. Put them there by hand; "
            "nothing is downloaded at run time.")
    try:
        app_module = importlib.import_module("insightface.app")
    except ImportError as exc:
        raise IdentityModelError(
            f"method 'face' needs the insightface package, which is not installed ({exc}). Install it into "
            f"ComfyUI's Python: pip install {INSIGHTFACE_PIP}") from None
    try:
        app = app_module.FaceAnalysis(name=name, root=str(insightface_root), providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_size=(det_size, det_size))
    except AssertionError as exc:  # insightface asserts 'detection' in its model list
        raise IdentityModelError(f"insightface pack {pack_dir} has no usable detection model ({exc!r}); "
                                 "it needs the detector .onnx (e.g. det_10g.onnx)") from None
    log.info("anime_pipeline: loaded insightface pack %s", pack_dir)
    return app


# -- gate ------------------------------------------------------------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def sampled_frames(n: int, every: int) -> list[int]:
    """The frame indices the gate checks: ``0, every, 2*every, ...`` plus the last frame
    ``n - 1`` when that stride misses it (once, never twice)."""
    sampled = list(range(0, n, every))
    if sampled and sampled[-1] != n - 1:
        sampled.append(n - 1)
    return sampled


def identity_gate(frames: torch.Tensor, references: torch.Tensor, embed: Embedder, method: str,
                  thresholds: IdentityThresholds, every: int = 4, mask: torch.Tensor | None = None,
                  name: str = "identity") -> GateResult:
    """Compare every ``every``-th frame and the last frame (crops) with the references (whole images)."""
    ref_vecs = embed([r for r in references])
    missing = [i for i, v in enumerate(ref_vecs) if v is None]
    if missing:
        raise NoReferenceFace(f"no face found in reference image(s) {missing}: the face method needs a detectable face "
                         "in every reference (use method 'clip_vision' for anime characters)")
    sampled = sampled_frames(frames.shape[0], every)
    crops, empty_masks = mask_crops(frames[sampled], None if mask is None else
                                    (mask[sampled] if mask.ndim == 3 and mask.shape[0] > 1 else mask))
    vecs = embed(crops)
    sims, no_face = {}, []
    for idx, vec in zip(sampled, vecs, strict=False):
        if vec is None:
            no_face.append(idx)
        else:
            sims[idx] = round(max(cosine(vec, r) for r in ref_vecs), 4)
    th = thresholds
    lost = [i for i, s in sims.items() if s < th.min_similarity]
    no_face_fraction = len(no_face) / len(sampled)
    too_few_faces = no_face_fraction > th.max_no_face_fraction
    outcome = NO_FACE if too_few_faces else IDENTITY_LOST if lost else PASS
    notes: list[str] = []
    reasons: list[str] = []
    if no_face:
        line = (f"no face found in {len(no_face)} of {len(sampled)} sampled frame(s) {no_face[:12]} "
                f"(allowed fraction {th.max_no_face_fraction})")
        (reasons if too_few_faces else notes).append(line)
    if lost:
        reasons.append(f"{method} similarity below {th.min_similarity} on frame(s) {lost[:12]} "
                       f"(lowest {min(sims[i] for i in lost):.3f})")
    if empty_masks:
        notes.append(f"empty character mask on sampled frame(s) {[sampled[i] for i in empty_masks]}: whole frame used")
    values = list(sims.values())
    return GateResult(
        name=name,
        passed=outcome == PASS,
        metrics={
            "n_frames": int(frames.shape[0]),
            "method": method,
            "outcome": outcome,
            "sampled_frames": len(sampled),
            "references": len(ref_vecs),
            "min_similarity": min(values) if values else None,
            "mean_similarity": round(float(np.mean(values)), 4) if values else None,
            "similarity": {str(k): v for k, v in sims.items()},
            "no_face_frames": no_face,
            "no_face_fraction": round(no_face_fraction, 4),
        },
        thresholds={"min_similarity": th.min_similarity, "max_no_face_fraction": th.max_no_face_fraction,
                    "every": every},
        failed_frames=sorted(set(lost) | (set(no_face) if too_few_faces else set())),
        notes=notes,
        reasons=reasons,
    )
