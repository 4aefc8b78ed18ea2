"""Nodes of the `anime_pipeline/image` family (not yet implemented)."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
