"""``python -m driver enhance``: anime-safe frame-rate conversion and upscaling of a whole
video file on one ComfyUI server.

Owns: probing the input and decoding it to exact RGB (``probe``), the cut / hold labels
decided once for the whole input and the chunk plan (``plan``), rendering each chunk as a
ComfyUI job from ``workflows/enhance_chunk.api.json`` with lossless chunks both ways
(``render``), the final encode with audio and subtitles carried over (``assemble``), and
the command with its work folder and manifest (``command``).

A command module: may import the base modules, ``driver.render`` (template binding), the
ComfyUI connection and the pack's pure ``core``."""
