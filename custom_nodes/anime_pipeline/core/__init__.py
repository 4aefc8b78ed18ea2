"""Pure logic of the pack: numpy / torch / OpenCV only.

Nothing in this package may import ComfyUI (``comfy``, ``comfy_extras``,
``comfy_api``, ``folder_paths``, ``server``, ``nodes``, ``execution``);
``tests/unit/test_packaging.py`` enforces it.
"""
