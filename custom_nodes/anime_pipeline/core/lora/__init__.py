"""LoRA stacking, pure part: stack rows, WAN 2.2 high/low pairing, the character
registry, file reading and caching, key-match accounting.

Nothing here imports ComfyUI. The nodes (``nodes/lora.py``) build the key maps with
``comfy.lora`` and apply the patches; every decision before that lives here and is
tested with fake key maps.

Modules: ``stack`` (rows, the ``AP_LORA_STACK`` value), ``pairing`` (which file goes on
which WAN 2.2 expert), ``registry`` (characters -> rows + trigger words), ``paths`` and
``files`` (finding, reading, checking, caching files), ``matching`` (how many keys a
model would use), ``apply`` (all checks before patching, and the report).
"""
