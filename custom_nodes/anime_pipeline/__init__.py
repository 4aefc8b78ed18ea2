"""anime_pipeline: a ComfyUI node pack for AI anime series production.

ComfyUI loads this folder as a custom-node pack and reads ``NODE_CLASS_MAPPINGS``
and ``NODE_DISPLAY_NAME_MAPPINGS``. The same folder installs as the Python package
``anime_pipeline`` so the headless driver can import the pure modules in
``anime_pipeline.core`` (segment maths, naming) without copying them.

The mappings are resolved lazily (PEP 562) so that ``import anime_pipeline.core.x``
does not import the node wrappers (and torch) for callers that only need pure logic.
Importing this module has no side effects beyond making the mappings available.
"""

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


def __getattr__(name):
    if name in __all__:
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
