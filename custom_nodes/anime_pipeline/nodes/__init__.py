"""Thin V1 node wrappers, one module per family. Each family module exports
``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``; this module merges them.

Node ids (``AP_*``) and input names are a public contract: saved workflows
reference them, so they are never renamed once landed.
"""

from . import chunk, image, lora, motion, quality, upscale, video

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _family in (image, video, upscale, chunk, lora, motion, quality):
    NODE_CLASS_MAPPINGS.update(_family.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_family.NODE_DISPLAY_NAME_MAPPINGS)
del _family
