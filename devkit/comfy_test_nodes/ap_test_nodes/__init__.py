"""Test-only ComfyUI nodes. Loaded by the integration harness, never shipped with the pack.

``AP_TestZeroConditioning`` stands in for a text encoder (no UMT5 weights exist on test
machines): it returns zero WAN conditioning of shape ``[1, tokens, 4096]``.
"""

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


NODE_CLASS_MAPPINGS = {"AP_TestZeroConditioning": AP_TestZeroConditioning,
                       "AP_TestBreakInterpolation": AP_TestBreakInterpolation}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_TestZeroConditioning": "Test Zero Conditioning (AP, tests only)",
                              "AP_TestBreakInterpolation": "Test Break Interpolation (AP, tests only)"}
