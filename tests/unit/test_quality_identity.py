"""Identity gate with stand-ins: a CLIP_VISION object whose embedding is the image's mean
colour, and an insightface package whose FaceAnalysis "detects" a face on non-black images
and embeds its mean colour, loaded through a stand-in folder_paths from a models folder.

What this exercises: the node's whole code path for both methods (model folder checks,
lazy package import, FaceAnalysis construction/prepare/caching, detection, largest-face
choice, embedding, cosine similarity, sampling, mask crops, no-face outcome, errors).
What it cannot: real CLIP or ArcFace numbers (no weights here); the real CLIP model runs
in tests/integration/test_quality_graphs.py with random weights."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from anime_pipeline.core.quality import identity as I
from anime_pipeline.nodes.quality import IdentityGate

RED, BLUE, GREEN = (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), (0.1, 0.9, 0.1)


def frames_of(*colours, size=(24, 40)):
    return torch.stack([torch.tensor(c).expand(*size, 3).clone() for c in colours]).float()


class StandInClipVision:
    """``encode_image`` like ComfyUI's ClipVisionModel: returns ``image_embeds`` [B, D]."""

    def __init__(self):
        self.shapes = []

    def encode_image(self, image, crop=True):
        self.shapes.append(tuple(image.shape))
        return {"image_embeds": image.mean(dim=(1, 2))}


def cos(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def padded(colour, fill):
    """Mean colour after pad_square: ``fill`` = the image's share of the square."""
    return fill * np.asarray(colour) + (1 - fill) * 0.5


def node_args(**kw):
    return {"method": "clip_vision", "every": 1, "clip_vision_threshold": 0.8, "face_threshold": 0.4,
            "max_no_face_fraction": 0.0, "insightface_model": "buffalo_l"} | kw


# -- clip_vision ---------------------------------------------------------------------------------

def test_clip_vision_scores_each_sampled_frame_against_the_best_reference():
    clipv = StandInClipVision()
    frames = frames_of(RED, RED, BLUE, RED, GREEN, RED)
    refs = frames_of(RED, GREEN)
    out, result, _ = IdentityGate().check(frames, refs, clip_vision=clipv, **node_args(every=2))
    assert out is frames
    sims = result.metrics["similarity"]
    assert set(sims) == {"0", "2", "4", "5"}  # every 2nd frame and the last
    assert sims["0"] == pytest.approx(1.0) and sims["4"] == pytest.approx(1.0)  # GREEN matches reference 2
    p = {c: padded(c, 24 / 40) for c in (RED, GREEN, BLUE)}  # 24x40 frames padded to 40x40
    assert sims["2"] == pytest.approx(max(cos(p[BLUE], p[RED]), cos(p[BLUE], p[GREEN])), abs=1e-4)
    assert not result.passed and result.failed_frames == [2] and result.metrics["outcome"] == I.IDENTITY_LOST
    assert all(s[1] == s[2] for s in clipv.shapes), "crops reach CLIP as squares"


@pytest.mark.parametrize("n,every,expected", [
    (8, 3, [0, 3, 6, 7]),  # the stride misses the last frame: it is added
    (7, 3, [0, 3, 6]),  # the stride reaches it: not added twice
    (81, 3, list(range(0, 81, 3)) + [80]),
    (81, 4, list(range(0, 81, 4))),
    (2, 4, [0, 1]),
    (1, 4, [0]),
    (4, 1, [0, 1, 2, 3]),
])
def test_sampling_always_includes_the_last_frame_once(n, every, expected):
    assert I.sampled_frames(n, every) == expected


def test_a_lost_last_frame_is_caught_when_the_stride_misses_it():
    """81 frames checked every 3rd: the stride stops at 78, but frame 80 (the FLF end keyframe,
    the seam to the next shot) is checked too, and reported under its own index."""
    frames = frames_of(*([RED] * 80 + [BLUE]), size=(8, 8))
    mask = torch.ones(81, 8, 8)
    mask[80] = 0  # empty mask on the last frame only: the note must name frame 80
    _, result, _ = IdentityGate().check(frames, frames_of(RED, size=(8, 8)), clip_vision=StandInClipVision(),
                                        character_mask=mask, **node_args(every=3))
    sims = result.metrics["similarity"]
    assert list(sims) == [str(i) for i in range(0, 79, 3)] + ["80"]
    assert result.metrics["sampled_frames"] == 28 and result.thresholds["every"] == 3
    assert sims["80"] == pytest.approx(cos(BLUE, RED), abs=1e-4) and sims["78"] == pytest.approx(1.0)
    assert not result.passed and result.failed_frames == [80] and result.metrics["outcome"] == I.IDENTITY_LOST
    assert any("frame(s) [80]" in r for r in result.reasons)
    assert "empty character mask on sampled frame(s) [80]: whole frame used" in result.notes


def test_clip_vision_crops_to_the_character_mask():
    half = frames_of(RED)
    half[:, :, 20:] = torch.tensor(BLUE)  # left half red, right half blue
    mask = torch.zeros(1, 24, 40)
    mask[:, 4:20, 24:38] = 1.0  # inside the blue half
    _, result, _ = IdentityGate().check(half, frames_of(BLUE), clip_vision=StandInClipVision(),
                                        character_mask=mask, **node_args())
    # box rows 4..20, cols 24..38 plus 10 % margin -> a 20x16 all-blue crop, padded to 20x20
    expected = cos(padded(BLUE, 16 / 20), padded(BLUE, 24 / 40))
    assert result.metrics["similarity"]["0"] == pytest.approx(expected, abs=1e-4)


def test_pad_square_keeps_the_image_centred():
    sq = I.pad_square(torch.ones(2, 6, 3))
    assert sq.shape == (6, 6, 3) and sq[2:4].min() == 1 and sq[0].max() == 0.5


def test_clip_vision_without_a_model_is_a_clear_error():
    with pytest.raises(ValueError, match=r"AP_IdentityGate\.clip_vision: method 'clip_vision' needs a CLIP_VISION"):
        IdentityGate().check(frames_of(RED), frames_of(RED), **node_args())


def test_mask_must_fit_the_frames():
    with pytest.raises(ValueError, match=r"character_mask: shape \[1, 8, 8\] does not fit frames \[1, 24, 40\]"):
        IdentityGate().check(frames_of(RED), frames_of(RED), clip_vision=StandInClipVision(),
                             character_mask=torch.ones(1, 8, 8), **node_args())


# -- face (insightface stand-in) -----------------------------------------------------------------

class StandInFaceAnalysis:
    instances = []

    def __init__(self, name, root, providers=None, **kw):
        self.name, self.root, self.providers = name, root, providers
        self.prepared = None
        StandInFaceAnalysis.instances.append(self)

    def prepare(self, ctx_id=0, det_size=(640, 640), **kw):
        self.prepared = (ctx_id, det_size)

    def get(self, bgr):
        assert bgr.dtype == np.uint8 and bgr.ndim == 3
        if bgr.mean() < 40:  # "no face" on dark images
            return []
        colour = bgr.reshape(-1, 3).mean(axis=0)  # BGR
        small = SimpleNamespace(bbox=np.array([0, 0, 2, 2.0]), normed_embedding=np.array([0.0, 1.0, 0.0]))
        big = SimpleNamespace(bbox=np.array([0, 0, 20, 20.0]), normed_embedding=colour / np.linalg.norm(colour))
        return [small, big]


@pytest.fixture
def comfy_models(tmp_path, monkeypatch):
    """A ComfyUI models folder with a buffalo_l pack, and stand-in folder_paths + insightface."""
    pack = tmp_path / "models" / "insightface" / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    for f in ("det_10g.onnx", "w600k_r50.onnx"):
        (pack / f).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "folder_paths", SimpleNamespace(models_dir=str(tmp_path / "models")))
    pkg, app = types.ModuleType("insightface"), types.ModuleType("insightface.app")
    app.FaceAnalysis = StandInFaceAnalysis
    pkg.app = app
    monkeypatch.setitem(sys.modules, "insightface", pkg)
    monkeypatch.setitem(sys.modules, "insightface.app", app)
    StandInFaceAnalysis.instances.clear()
    return tmp_path / "models"


def test_face_method_loads_the_pack_from_the_models_folder_once(comfy_models):
    node = IdentityGate()
    _, result, _ = node.check(frames_of(RED, RED), frames_of(RED), **node_args(method="face"))
    node.check(frames_of(RED), frames_of(RED), **node_args(method="face"))
    (app,) = StandInFaceAnalysis.instances  # cached across runs
    assert (app.name, app.root) == ("buffalo_l", str(comfy_models / "insightface"))
    assert app.providers == ["CPUExecutionProvider"] and app.prepared == (-1, (640, 640))
    assert result.passed and result.metrics["similarity"] == {"0": 1.0, "1": 1.0}  # the big face was used


def test_face_method_reports_lost_identity_with_arcface_numbers(comfy_models):
    _, result, _ = IdentityGate().check(frames_of(RED, BLUE), frames_of(RED), **node_args(method="face"))
    assert result.failed_frames == [1] and result.metrics["outcome"] == I.IDENTITY_LOST
    assert result.metrics["similarity"]["1"] == pytest.approx(cos(BLUE[::-1], RED[::-1]), abs=0.02)
    assert result.thresholds["min_similarity"] == 0.4


def test_no_face_is_its_own_outcome_never_a_pass(comfy_models):
    dark = (0.02, 0.02, 0.02)
    frames = frames_of(RED, dark, RED, dark)
    _, result, _ = IdentityGate().check(frames, frames_of(RED), **node_args(method="face"))
    assert not result.passed and result.metrics["outcome"] == I.NO_FACE
    assert result.metrics["no_face_frames"] == [1, 3] and result.failed_frames == [1, 3]
    _, tolerant, _ = IdentityGate().check(frames, frames_of(RED), **node_args(method="face", max_no_face_fraction=0.5))
    assert tolerant.passed and tolerant.metrics["no_face_frames"] == [1, 3]
    assert any("no face found in 2 of 4" in n for n in tolerant.notes)


def test_no_face_on_the_last_frame_is_found_when_the_stride_misses_it(comfy_models):
    dark = (0.02, 0.02, 0.02)
    frames = frames_of(RED, RED, RED, RED, dark)  # every=3 samples 0, 3 and the last frame, 4
    _, result, _ = IdentityGate().check(frames, frames_of(RED), **node_args(method="face", every=3))
    assert set(result.metrics["similarity"]) == {"0", "3"} and result.metrics["sampled_frames"] == 3
    assert result.metrics["no_face_frames"] == [4] and result.failed_frames == [4]
    assert result.metrics["outcome"] == I.NO_FACE and result.metrics["no_face_fraction"] == pytest.approx(1 / 3, abs=1e-4)


def test_reference_without_a_face_is_an_input_error(comfy_models):
    with pytest.raises(ValueError, match=r"AP_IdentityGate\.references: no face found in reference image\(s\) \[0\]"):
        IdentityGate().check(frames_of(RED), frames_of((0.0, 0.0, 0.0)), **node_args(method="face"))


def test_missing_model_pack_says_where_to_put_it(comfy_models):
    expected = comfy_models / "insightface" / "models" / "antelopev2"
    with pytest.raises(ValueError, match=r"insightface_model: insightface model pack 'antelopev2' not found") as err:
        IdentityGate().check(frames_of(RED), frames_of(RED), **node_args(method="face", insightface_model="antelopev2"))
    assert str(expected) in str(err.value) and "nothing is downloaded" in str(err.value)


def test_missing_insightface_package_names_the_pip_package(comfy_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "insightface", None)  # import fails
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    with pytest.raises(ValueError, match=r"pip install insightface onnxruntime"):
        IdentityGate().check(frames_of(RED), frames_of(RED), **node_args(method="face"))


def test_model_name_must_be_a_folder_name(comfy_models):
    with pytest.raises(ValueError, match=r"insightface_model: expected a model pack folder name"):
        IdentityGate().check(frames_of(RED), frames_of(RED), **node_args(method="face", insightface_model="../x"))
