"""The harness itself: the pack loads in a real ComfyUI, /object_info matches the node
classes, and the official WAN 2.2 FLF topology runs on the tiny random models."""

from __future__ import annotations

import pytest

from anime_pipeline import NODE_CLASS_MAPPINGS
from devkit.harness.media import saved_video

pytestmark = pytest.mark.integration


def _declared(cls) -> dict[str, list[str]]:
    spec = cls.INPUT_TYPES()
    return {section: list(spec.get(section, {})) for section in ("required", "optional")}


def test_object_info_lists_every_pack_node_with_declared_inputs(comfy):
    info = comfy.client.object_info()
    missing = sorted(set(NODE_CLASS_MAPPINGS) - set(info))
    assert not missing, f"pack nodes absent from /object_info: {missing}\n{comfy.server.log_tail()}"
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        entry = info[node_id]
        assert node_id.startswith("AP_")
        assert entry["category"].startswith("anime_pipeline/"), node_id
        declared = _declared(cls)
        served = {s: list(entry["input"].get(s, {})) for s in ("required", "optional")}
        assert served == declared, node_id
        order = {s: entry["input_order"].get(s, []) for s in ("required", "optional")}
        assert order == declared, node_id
        assert entry["output"] == list(cls.RETURN_TYPES), node_id
        assert entry["output_name"] == list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)), node_id


def tiny_flf_prompt(tiny_wan: dict, *, length: int = 9, size: int = 64, prefix: str = "harness/flf") -> dict:
    """The official WAN 2.2 14B FLF topology (4 steps, split at 2, cfg 1, shift 5,
    euler/simple, 16 fps) on the tiny models, with zero conditioning for the text."""
    n = {}

    def node(nid, cls, **inputs):
        n[nid] = {"class_type": cls, "inputs": inputs}
        return nid

    node("1", "UNETLoader", unet_name=tiny_wan["high"], weight_dtype="default")
    node("2", "UNETLoader", unet_name=tiny_wan["low"], weight_dtype="default")
    node("3", "ModelSamplingSD3", model=["1", 0], shift=5.0)
    node("4", "ModelSamplingSD3", model=["2", 0], shift=5.0)
    node("5", "AP_TestZeroConditioning", tokens=8)
    node("6", "VAELoader", vae_name=tiny_wan["vae"])
    node("7", "EmptyImage", width=size, height=size, batch_size=1, color=0x3366CC)
    node("8", "EmptyImage", width=size, height=size, batch_size=1, color=0xCC6633)
    node("9", "WanFirstLastFrameToVideo", positive=["5", 0], negative=["5", 1], vae=["6", 0], width=size,
         height=size, length=length, batch_size=1, start_image=["7", 0], end_image=["8", 0])
    common = dict(steps=4, cfg=1.0, sampler_name="euler", scheduler="simple", positive=["9", 0], negative=["9", 1])
    node("10", "KSamplerAdvanced", model=["3", 0], add_noise="enable", noise_seed=7, latent_image=["9", 2],
         start_at_step=0, end_at_step=2, return_with_leftover_noise="enable", **common)
    node("11", "KSamplerAdvanced", model=["4", 0], add_noise="disable", noise_seed=0, latent_image=["10", 0],
         start_at_step=2, end_at_step=10000, return_with_leftover_noise="disable", **common)
    node("12", "VAEDecode", samples=["11", 0], vae=["6", 0])
    node("13", "CreateVideo", images=["12", 0], fps=16.0)
    node("14", "SaveVideo", video=["13", 0], filename_prefix=prefix, format="auto", codec="auto")
    return n


def test_tiny_wan_flf_topology_runs_end_to_end(comfy, tiny_wan, tmp_path):
    entry = comfy.client.run(tiny_flf_prompt(tiny_wan), timeout=300)
    video = saved_video(comfy.client, entry, tmp_path)
    assert video.fps == pytest.approx(16.0)
    assert video.frames == 9
