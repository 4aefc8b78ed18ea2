"""Nodes of the `anime_pipeline/motion` family (not yet implemented)."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
