"""Identity gate's CLIP_VISION embedder at chunk boundaries: crops go to the model in chunks
of ``CLIP_BATCH``; every crop must come back exactly once, in order, with the embedding it
gets when it is embedded on its own, whatever else shares its chunk (clip lengths around
the chunk size, WAN lengths, 1-2 frames; crops of one size and of mixed sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anime_pipeline.core.quality import identity as I
from devkit.synthetic_clips import random_frames

B = I.CLIP_BATCH
LENGTHS = [1, 2, B - 1, B, B + 1, 2 * B, 2 * B + 1, 17, 33, 81]


class ResolutionSensitiveClipVision:
    """Like ComfyUI's ClipVisionModel: the model resizes its input to a fixed size (here 8x8,
    antialiased) and embeds it; records the batch sizes it was given."""

    def __init__(self):
        self.batches = []

    def encode_image(self, image, crop=True):
        self.batches.append(image.shape[0])
        x = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(8, 8), mode="bilinear", antialias=True,
                                            align_corners=False)
        return {"image_embeds": x.flatten(1)}


def _alone(model, images):
    return [I.clip_vision_embedder(model)([img])[0] for img in images]


@pytest.mark.parametrize("n", LENGTHS)
def test_same_size_crops_come_back_once_in_order(n):
    model = ResolutionSensitiveClipVision()
    images = list(random_frames(n, 32, 48))
    vecs = I.clip_vision_embedder(model)(images)
    assert len(vecs) == n and sum(model.batches) == n and max(model.batches) <= B
    for i, (v, ref) in enumerate(zip(vecs, _alone(ResolutionSensitiveClipVision(), images))):
        assert np.isfinite(v).all() and np.array_equal(v, ref), f"crop {i} of {n}"


@pytest.mark.parametrize("n", LENGTHS)
def test_mixed_size_crops_do_not_depend_on_their_chunk(n):
    """Per-frame masks give crops of different sizes; a crop's embedding must not change with
    the largest crop that happens to share its chunk."""
    model = ResolutionSensitiveClipVision()
    frames = random_frames(n, 32, 48)
    sizes = [(8 + (5 * i) % 24, 10 + (7 * i) % 38) for i in range(n)]
    images = [frames[i, :h, :w] for i, (h, w) in enumerate(sizes)]
    vecs = I.clip_vision_embedder(model)(images)
    assert len(vecs) == n and sum(model.batches) == n and max(model.batches) <= B
    alone = _alone(ResolutionSensitiveClipVision(), images)
    bad = [i for i in range(n) if not np.allclose(vecs[i], alone[i], atol=1e-6)]
    assert not bad, f"crops {bad[:10]} of {n} embed differently in a chunk than alone"


class ShortModel(ResolutionSensitiveClipVision):
    """A model that returns one embedding fewer than it was given."""

    def encode_image(self, image, crop=True):
        return {"image_embeds": super().encode_image(image)["image_embeds"][:-1]}


def test_a_model_returning_too_few_embeddings_is_an_error_not_a_missing_frame():
    with pytest.raises(RuntimeError, match="embeddings"):
        I.clip_vision_embedder(ShortModel())(list(random_frames(3, 32, 48)))


@pytest.mark.parametrize("n,every", [(1, 4), (2, 1), (17, 4), (33, 16), (81, 4), (81, 1), (B + 1, B),
                                     (81, 3), (10, 4), (2, 4), (B + 2, B), (2 * B + 1, 3)])
def test_gate_scores_every_sampled_frame_of_the_clip(n, every):
    """Every ``every``-th frame and the last one (which the stride misses unless every divides
    n - 1), each once, in order, with the score its crop gets alone."""
    frames = random_frames(n, 32, 48)
    masks = torch.zeros(n, 32, 48)
    for i in range(n):  # a different box per frame: crops of mixed sizes
        masks[i, 2:10 + i % 20, 3:12 + (3 * i) % 30] = 1
    refs = random_frames(2, 32, 48)
    embed = I.clip_vision_embedder(ResolutionSensitiveClipVision())
    result = I.identity_gate(frames, refs, embed, I.CLIP_VISION, I.IdentityThresholds(min_similarity=-1.0),
                             every=every, mask=masks)
    sampled = sorted(set(range(0, n, every)) | {n - 1})
    sims = result.metrics["similarity"]
    assert list(sims) == [str(i) for i in sampled] and result.metrics["sampled_frames"] == len(sampled)
    ref_vecs = [embed([r])[0] for r in refs]
    crops, _ = I.mask_crops(frames[sampled], masks[sampled])
    for i, crop in zip(sampled, crops):
        vec = embed([crop])[0]
        assert sims[str(i)] == pytest.approx(round(max(I.cosine(vec, r) for r in ref_vecs), 4), abs=1e-4), i
