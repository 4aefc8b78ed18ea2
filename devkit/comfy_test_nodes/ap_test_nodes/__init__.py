"""Test-only ComfyUI nodes. Loaded by the integration harness, never shipped with the pack.

``AP_TestZeroConditioning`` stands in for a text encoder (no UMT5 weights exist on test
machines): it returns zero WAN conditioning of shape ``[1, tokens, 4096]``.

The upscale tests compare ``AP_UpscaleVideo`` with ComfyUI's own code: ``AP_TestTiledScale``
runs ``comfy.utils.tiled_scale`` frame by frame (as core ``ImageUpscaleWithModel`` does, at a
chosen tile and overlap), ``AP_TestMaxDiff`` reports the largest absolute difference of two
IMAGE batches, and ``AP_TestOOMUpscaleModel`` wraps an upscale model so that calls on more
than ``max_frames`` frames or tiles larger than ``max_tile`` pixels raise ComfyUI's
out-of-memory exception (an injected OOM).

The long-shot retake tests render segments without a model: ``AP_TestBlendClip`` (titled
``First-Last Frame`` in their segment graph) blends ``length`` frames from the start image to
the end image (or holds the start), and ``AP_TestSeedGlitch`` (titled ``Sampler High`` /
``Sampler Low``, so the driver sets its seed) inverts the first or last quarter of the clip
when its seed is one of ``glitch_seeds``: a segment "replaced by another clip" whose join
the seam gate must catch.
"""

import json

import torch


class AP_TestZeroConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tokens": ("INT", {"default": 8, "min": 1, "max": 512, "tooltip": "Number of text tokens."})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "encode"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: zero WAN text conditioning [1, tokens, 4096]."

    def encode(self, tokens):
        def cond():
            return [[torch.zeros(1, tokens, 4096), {}]]

        return (cond(), cond())


class AP_TestTiledScale:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"upscale_model": ("UPSCALE_MODEL",), "images": ("IMAGE",),
                             "tile": ("INT", {"default": 512, "min": 16, "max": 4096}),
                             "overlap": ("INT", {"default": 32, "min": 0, "max": 512})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: comfy.utils.tiled_scale with an upscale model, one frame at a time (fp32, CPU)."

    def run(self, upscale_model, images, tile, overlap):
        import comfy.utils

        s = comfy.utils.tiled_scale(images.movedim(-1, -3), lambda a: upscale_model(a), tile_x=tile, tile_y=tile,
                                    overlap=overlap, upscale_amount=upscale_model.scale)
        return (torch.clamp(s.movedim(-3, -1), min=0, max=1.0),)


class AP_TestMaxDiff:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("IMAGE",), "b": ("IMAGE",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: JSON {shape_a, shape_b, max_abs_diff} of two IMAGE batches."

    def run(self, a, b):
        diff = float((a.float() - b.float()).abs().max()) if a.shape == b.shape else None
        return (json.dumps({"shape_a": list(a.shape), "shape_b": list(b.shape), "max_abs_diff": diff}),)


class _OOMProxy:
    """Delegates to a spandrel descriptor; raises OOM on too many frames or too large a tile."""

    def __init__(self, inner, max_frames, max_tile):
        self._inner, self._max_frames, self._max_tile = inner, max_frames, max_tile

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def to(self, *args, **kwargs):
        self._inner.to(*args, **kwargs)
        return self

    def __call__(self, x):
        import comfy.model_management as mm

        if x.shape[0] > self._max_frames or max(x.shape[-2:]) > self._max_tile:
            raise mm.OOM_EXCEPTION(f"injected OOM: {list(x.shape)}")
        return self._inner(x)


class AP_TestOOMUpscaleModel:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"upscale_model": ("UPSCALE_MODEL",),
                             "max_frames": ("INT", {"default": 1, "min": 1, "max": 4096}),
                             "max_tile": ("INT", {"default": 256, "min": 1, "max": 4096})}}

    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "run"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: the model raises out-of-memory on > max_frames frames or tiles > max_tile px."

    def run(self, upscale_model, max_frames, max_tile):
        return (_OOMProxy(upscale_model, max_frames, max_tile),)


class AP_TestBreakInterpolation:
    """Makes the next ``count`` calls of the pack's flow interpolator in this server return
    noise: a broken interpolation injected for the bad mid-frame fallback test."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 1, "min": 0, "max": 1000,
                                               "tooltip": "Interpolator calls to break (0 = restore)."})}}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("status",)
    FUNCTION = "arm"
    OUTPUT_NODE = True
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: the next `count` flow interpolations return noise."

    def arm(self, count):
        import sys

        import numpy as np

        module = next(m for name, m in list(sys.modules.items())
                      if name.endswith("core.interpolate") and hasattr(m, "FlowInterpolator"))
        cls = module.FlowInterpolator
        original = getattr(cls, "_ap_test_original", cls.interpolate)
        cls._ap_test_original = original
        left = {"n": int(count)}

        def interpolate(self, a, b, ts, out=None):
            result = original(self, a, b, ts, out=out)
            if left["n"] > 0:
                left["n"] -= 1
                result[:] = np.random.default_rng(left["n"]).random(result.shape, dtype=np.float32)
            return result

        cls.interpolate = interpolate
        return {"ui": {"text": [f"armed {count}"]}, "result": (f"armed {count}",)}


class AP_TestBlendClip:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start_image": ("IMAGE",), "width": ("INT", {"default": 64, "min": 8, "max": 4096}),
                             "height": ("INT", {"default": 64, "min": 8, "max": 4096}),
                             "length": ("INT", {"default": 17, "min": 1, "max": 4096}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 1})},
                "optional": {"end_image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: `length` frames blending linearly from start_image to end_image (or holding start)."

    def run(self, start_image, width, height, length, batch_size, end_image=None):
        def fit(img):
            return torch.nn.functional.interpolate(img[:1].movedim(-1, 1), size=(height, width), mode="bilinear",
                                                   align_corners=False).movedim(1, -1)

        a = fit(start_image)
        b = fit(end_image) if end_image is not None else a
        t = torch.linspace(0, 1, length).view(-1, 1, 1, 1)
        return ((1 - t) * a + t * b,)


class AP_TestSeedGlitch:
    @classmethod
    def INPUT_TYPES(cls):
        widget = ("STRING", {"default": ""})
        return {"required": {"images": ("IMAGE",), "noise_seed": ("INT", {"default": 0, "min": 0,
                                                                         "max": 0xFFFFFFFFFFFFFFFF}),
                             "glitch_seeds": ("STRING", {"default": ""}),
                             "glitch": (["start", "end"], {"default": "end"})},
                "optional": {k: widget for k in ("add_noise", "steps", "cfg", "sampler_name", "scheduler",
                                                 "start_at_step", "end_at_step", "return_with_leftover_noise")}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "anime_pipeline/testing"
    DESCRIPTION = "TEST ONLY: with a seed in glitch_seeds, the first (or last) quarter of the clip is inverted."

    def run(self, images, noise_seed, glitch_seeds, glitch, **_):
        if str(noise_seed) not in glitch_seeds.split(","):
            return (images,)
        out, k = images.clone(), max(2, images.shape[0] // 4)
        part = slice(0, k) if glitch == "start" else slice(images.shape[0] - k, None)
        out[part] = 1 - out[part]
        return (out,)


NODE_CLASS_MAPPINGS = {"AP_TestBlendClip": AP_TestBlendClip, "AP_TestSeedGlitch": AP_TestSeedGlitch,
                       "AP_TestZeroConditioning": AP_TestZeroConditioning, "AP_TestTiledScale": AP_TestTiledScale,
                       "AP_TestMaxDiff": AP_TestMaxDiff, "AP_TestOOMUpscaleModel": AP_TestOOMUpscaleModel,
                       "AP_TestBreakInterpolation": AP_TestBreakInterpolation}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_TestZeroConditioning": "Test Zero Conditioning (AP, tests only)",
                              "AP_TestTiledScale": "Test Tiled Scale (AP, tests only)",
                              "AP_TestMaxDiff": "Test Max Diff (AP, tests only)",
                              "AP_TestOOMUpscaleModel": "Test OOM Upscale Model (AP, tests only)",
                              "AP_TestBreakInterpolation": "Test Break Interpolation (AP, tests only)",
                              "AP_TestBlendClip": "Test Blend Clip (AP, tests only)",
                              "AP_TestSeedGlitch": "Test Seed Glitch (AP, tests only)"}
