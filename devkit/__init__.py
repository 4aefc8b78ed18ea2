"""Development kit: what the tests and the benchmarks share, kept out of the product
(the wheel packages only ``driver`` and ``anime_pipeline``; tests/unit/test_devkit.py
checks it).

- ``calibration``: the gates' calibration footage (real WAN clips) and degradations;
- ``groundtruth``: labelled clips for the motion gate and the interpolators;
- ``harness``: a real ComfyUI for integration tests (start, link the pack, tiny models,
  UI -> API conversion, node docs), with ``comfy_test_nodes``;
- ``standins``: local stand-ins for RunPod's API and worker-comfyui;
- ``loratools``: LoRA files in the layouts trainers write; ``farm_helpers``: a farm run
  wired as the runner wires it, for tests and ``benchmarks.bench_farm``.

Import it from the repository root (tests, ``python -m benchmarks.bench_x``); nothing
in ``driver`` or the pack may import it."""
