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


NODE_CLASS_MAPPINGS = {"AP_TestZeroConditioning": AP_TestZeroConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_TestZeroConditioning": "Test Zero Conditioning (AP, tests only)"}
