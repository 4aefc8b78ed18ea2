"""``python -m driver enhance``: anime-safe frame-rate conversion and upscaling of video
files on one ComfyUI server, a pool of servers, RunPod pods or a RunPod Serverless endpoint.

Owns: probing the input and decoding it to exact RGB (``probe``), the cut / hold labels
decided once for the whole input and the chunk plan (``plan``), a chunk's ComfyUI workflow
from ``workflows/enhance_chunk.api.json`` with lossless chunks both ways (``render``),
chunks as the executors' jobs (``jobs``), chunk sizes for the backend's limits
(``limits``), every input's chunks as one queue over the executor (``dispatch``,
``progress``), the final encode with audio and subtitles carried over (``assemble``), the
work folder and its manifest (``command``), and the command over several inputs with its
locks and backend (``batch``, ``cli``).

A command module: may import the base modules, ``driver.render`` (template binding,
the executor contract), the farm (``driver.farm``), ``driver.backends``, the ComfyUI
connection and the pack's pure ``core``."""
