"""Quality gates in a real ComfyUI: the report reaches /history (and its card PNG carries
it), policy=stop ends the prompt with an error naming the gate and carrying the report
while the SaveVideo wired after it writes nothing, the seam gate reads AP_FLFChainConcat's
JSON, and the identity gate runs a full-size ViT-H CLIP vision model (random weights,
written at test time) loaded by core CLIPVisionLoader."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from devkit import calibration as cal
from anime_pipeline.core.quality.card import read_card
from anime_pipeline.core.quality.report import parse_stop_message, validate_report
from driver.errors import ExecutionFailed
from devkit.harness.comfy import CACHE_DIR, link_model

pytestmark = pytest.mark.integration

CLIP = "image_to_video_wan-1.webp"
N = 17
CLIP_VISION_RECIPE = 1  # bump when the random model recipe changes


class Graph(dict):
    """An API-format prompt built node by node; ``add`` returns the node id."""

    def add(self, cls: str, **inputs) -> str:
        nid = str(len(self) + 1)
        self[nid] = {"class_type": cls, "inputs": inputs}
        return nid


def gates_chain(g: Graph, frames: list, start: list, end: list) -> list[list]:
    """Artifact -> temporal -> keyframe fidelity -> seam, frames passed through each."""
    a = g.add("AP_ArtifactGate", frames=frames, black_fraction=0.98, min_luma_std=0.02, max_exposure_jump=0.2,
              max_clipped_increase=0.2, min_sharpness_ratio=0.6, min_sharpness=1e-4, frozen_motion=3.0,
              expect_motion=True)
    t = g.add("AP_TemporalGate", frames=[a, 0], warp_error_floor=0.075, warp_error_k=3.0,
              max_median_warp_error=0.03, max_flicker=0.016)
    f = g.add("AP_KeyframeFidelityGate", frames=[t, 0], min_ssim=0.8, max_mean_shift=2.5, max_delta_e=1.5,
              start_image=start, end_image=end)
    s = g.add("AP_SeamGate", frames=[f, 0], seam_index=N // 2, warp_error_k=3.0, warp_error_floor=0.03,
              max_luma_jump=1.35, max_chroma_jump=2.0)
    return [[a, 1], [t, 1], [f, 1], [s, 1]], [s, 0]


def report_node(g: Graph, frames, results, policy: str, label: str = "") -> str:
    return g.add("AP_QualityReport", frames=frames, policy=policy, label=label, filename_prefix="ap_quality_it/card",
                 **{f"gate_{i}": r for i, r in enumerate(results, 1)})


def save_webp(frames: np.ndarray, path):
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], lossless=True, duration=62, loop=0)
    return path


@pytest.fixture(scope="module")
def media(comfy, tmp_path_factory):
    try:
        clip = np.array(cal.template_clip(CLIP)[:N])
    except FileNotFoundError as exc:
        pytest.skip(f"real WAN test clips unavailable: {exc}")
    d = tmp_path_factory.mktemp("quality_media")
    files = {
        "good": save_webp(clip, d / "ap_q_good.webp"),
        "flicker": save_webp(cal.brightness_flicker(clip), d / "ap_q_flicker.webp"),
    }
    for key, frame in (("start", clip[0]), ("end", clip[-1])):
        Image.fromarray(cal.lossy_round_trip(frame)).save(d / f"ap_q_{key}.png")
        files[key] = d / f"ap_q_{key}.png"
    return {k: comfy.client.upload_image(p) for k, p in files.items()}


def load(g: Graph, name: str) -> list:
    return [g.add("LoadImage", image=name), 0]


def test_gates_report_reaches_history_and_the_card(comfy, media, tmp_path):
    g = Graph()
    results, frames = gates_chain(g, load(g, media["good"]), load(g, media["start"]), load(g, media["end"]))
    rep_id = report_node(g, frames, results, "report", label="it_shot")
    entry = comfy.client.run(g, timeout=300)
    ui = entry["outputs"][rep_id]
    (rep,) = ui["ap_quality_report"]
    validate_report(rep)
    assert rep["passed"], rep["summary"]
    assert [x["name"] for x in rep["gates"]] == ["artifact", "temporal", "keyframe_fidelity", "seam"]
    assert rep["frames"] == {"count": N, "width": 512, "height": 512}
    assert rep["label"] == "it_shot" and rep["node"] == rep_id
    (card,) = ui["images"]
    assert read_card(comfy.client.download(card, tmp_path / "card.png")) == rep


def flicker_graph(media, policy: str, prefix: str) -> tuple[Graph, str]:
    g = Graph()
    t = g.add("AP_TemporalGate", frames=load(g, media["flicker"]), warp_error_floor=0.075, warp_error_k=3.0,
              max_median_warp_error=0.03, max_flicker=0.016)
    rep = report_node(g, [t, 0], [[t, 1]], policy)
    video = g.add("CreateVideo", images=[rep, 0], fps=16.0)
    g.add("SaveVideo", video=[video, 0], filename_prefix=prefix, format="auto", codec="auto")
    return g, rep


def test_stop_policy_fails_the_prompt_with_the_report_and_nothing_is_saved(comfy, media):
    prefix = "ap_quality_it/stopped"
    g, rep_id = flicker_graph(media, "stop", prefix)
    with pytest.raises(ExecutionFailed) as err:
        comfy.client.run(g, timeout=300)
    e = err.value
    assert e.node_type == "AP_QualityReport" and e.node_id == rep_id
    first = e.exception_message.splitlines()[0]
    assert first.startswith("quality FAILED: 1 of 1 gate(s) failed: temporal (gate_1): brightness flicker")
    rep = parse_stop_message(e.exception_message)
    validate_report(rep)
    assert rep["failed_gates"] == ["temporal"] and rep["policy"] == "stop"
    assert set(rep["gates"][0]["metrics"]["flicker_frames"]) <= set(range(3, N, 4))
    assert not list((comfy.output_dir / "ap_quality_it").glob("stopped*")), "SaveVideo ran after a stop"


def test_report_policy_lets_the_same_graph_save_its_video(comfy, media):
    """Control for the stop test: the SaveVideo branch does write when the report continues."""
    g, rep_id = flicker_graph(media, "report", "ap_quality_it/continued")
    entry = comfy.client.run(g, timeout=300)
    (rep,) = entry["outputs"][rep_id]["ap_quality_report"]
    assert rep["passed"] is False and rep["failed_gates"] == ["temporal"]
    assert list((comfy.output_dir / "ap_quality_it").glob("continued*.mp4"))


def test_seam_gate_reads_the_chain_concat_seam_report(comfy, media):
    g = Graph()
    clip = load(g, media["good"])
    hero = N // 2
    a = g.add("ImageFromBatch", image=clip, batch_index=0, length=hero + 1)
    b = g.add("ImageFromBatch", image=clip, batch_index=hero, length=N - hero)
    cat = g.add("AP_FLFChainConcat", segment_a=[a, 0], segment_b=[b, 0], drop_shared_hero=True, smooth_frames=0,
                color_match="off")
    s = g.add("AP_SeamGate", frames=[cat, 0], seam_index=0, warp_error_k=3.0, warp_error_floor=0.03,
              max_luma_jump=1.35, max_chroma_jump=2.0, seam_report=[cat, 1])
    rep_id = report_node(g, [s, 0], [[s, 1]], "report")
    entry = comfy.client.run(g, timeout=300)
    (rep,) = entry["outputs"][rep_id]["ap_quality_report"]
    (seam,) = rep["gates"][0]["metrics"]["seams"]
    assert seam["seam_index"] == hero + 1 and rep["passed"], rep["summary"]
    assert set(seam["concat"]) == {"dropped_frame", "luma_jump", "ssim_across_seam", "hero_similarity"}


# -- identity: a full-size ViT-H CLIP vision with random weights -------------------------------

def clip_vision_h_shapes(hidden=1280, layers=32, mlp=5120, patch=14, image=224, proj=1024) -> dict:
    """Key layout of ComfyUI's clip_vision_config_h.json model (CLIPVisionModelProjection);
    comfy/clip_vision.py detects ViT-H by ``vision_model.encoder.layers.30.layer_norm1.weight``."""
    shapes = {
        "vision_model.embeddings.class_embedding": (hidden,),
        "vision_model.embeddings.patch_embedding.weight": (hidden, 3, patch, patch),
        "vision_model.embeddings.position_embedding.weight": ((image // patch) ** 2 + 1, hidden),
        "vision_model.pre_layrnorm.weight": (hidden,), "vision_model.pre_layrnorm.bias": (hidden,),
        "vision_model.post_layernorm.weight": (hidden,), "vision_model.post_layernorm.bias": (hidden,),
        "visual_projection.weight": (proj, hidden),
    }
    for i in range(layers):
        p = f"vision_model.encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{n}.weight"], shapes[f"{p}self_attn.{n}.bias"] = (hidden, hidden), (hidden,)
        for n in ("layer_norm1", "layer_norm2"):
            shapes[f"{p}{n}.weight"], shapes[f"{p}{n}.bias"] = (hidden,), (hidden,)
        shapes[f"{p}mlp.fc1.weight"], shapes[f"{p}mlp.fc1.bias"] = (mlp, hidden), (mlp,)
        shapes[f"{p}mlp.fc2.weight"], shapes[f"{p}mlp.fc2.bias"] = (hidden, mlp), (hidden,)
    return shapes


def random_clip_vision_h():
    """Write (once per recipe) a random fp16 ViT-H CLIP vision file; ~1.26 GB."""
    import torch
    from safetensors.torch import save_file

    path = CACHE_DIR / f"ap_random_clip_vision_h_r{CLIP_VISION_RECIPE}.safetensors"
    if path.is_file():
        return path
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in clip_vision_h_shapes().items():
        if "norm" in key:
            sd[key] = (torch.ones(shape) if key.endswith("weight") else torch.zeros(shape)).half()
        elif key.endswith("bias"):
            sd[key] = torch.zeros(shape, dtype=torch.float16)
        else:
            sd[key] = (torch.randn(shape, generator=gen) * 0.02).half()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp))
    tmp.rename(path)
    return path


def test_identity_gate_runs_a_real_clip_vision_model(comfy, media):
    name = link_model(comfy.models_dir, "clip_vision", random_clip_vision_h(), "ap_random_clip_vision_h.safetensors")
    g = Graph()
    loader = g.add("CLIPVisionLoader", clip_name=name)
    ident = g.add("AP_IdentityGate", frames=load(g, media["good"]), references=load(g, media["start"]),
                  method="clip_vision", every=8, clip_vision_threshold=0.8, face_threshold=0.4,
                  max_no_face_fraction=0.0, insightface_model="buffalo_l", clip_vision=[loader, 0])
    rep_id = report_node(g, [ident, 0], [[ident, 1]], "report")
    entry = comfy.client.run(g, timeout=600)
    (rep,) = entry["outputs"][rep_id]["ap_quality_report"]
    m = rep["gates"][0]["metrics"]
    assert m["method"] == "clip_vision" and m["sampled_frames"] == 3 and m["references"] == 1
    assert set(m["similarity"]) == {"0", "8", "16"}
    assert all(math.isfinite(v) and -1.0 <= v <= 1.0001 for v in m["similarity"].values())
    assert m["outcome"] in ("pass", "identity_lost")  # random weights: the number means nothing
    assert "missing clip vision" not in comfy.server.log_tail(400), "the random file's keys do not match ViT-H"


def test_identity_face_method_without_insightface_is_a_clear_error(comfy, media):
    def run():
        g = Graph()
        ident = g.add("AP_IdentityGate", frames=load(g, media["good"]), references=load(g, media["start"]),
                      method="face", every=8, clip_vision_threshold=0.8, face_threshold=0.4,
                      max_no_face_fraction=0.0, insightface_model="ap_test_pack")
        report_node(g, [ident, 0], [[ident, 1]], "report")
        with pytest.raises(ExecutionFailed) as err:
            comfy.client.run(g, timeout=120)
        assert err.value.node_type == "AP_IdentityGate"
        return err.value.exception_message

    pack = comfy.models_dir / "insightface" / "models" / "ap_test_pack"
    msg = run()
    assert "AP_IdentityGate.insightface_model" in msg and str(pack) in msg
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "det_10g.onnx").write_bytes(b"")
    msg = run()
    assert "pip install insightface onnxruntime" in msg
