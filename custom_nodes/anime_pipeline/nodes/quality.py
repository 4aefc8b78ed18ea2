"""Nodes of the `anime_pipeline/quality` family (not yet implemented)."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
