"""Apply a 4-LoRA stack with AP_ApplyLoraStack vs 4 chained core LoraLoaderModelOnly
nodes, on the tiny random WAN 2.2 DiT, in one run; also checks that both give
bit-identical patched weights.

Needs ComfyUI's Python (it imports ComfyUI in-process, on CPU):

    cd /work/main && ~/ComfyUI/.venv/bin/python benchmarks/bench_lora.py [--layers 1] [--repeats 20]

``COMFYUI_DIR`` overrides the ComfyUI folder (default ``~/ComfyUI``). Times are wall
clock per apply: "cold" is the first apply (files read from disk), "warm" the median of
``--repeats`` more (each side keeps its files in memory: core on its node instances,
the pack in its LRU cache). Applying only adds patches; the weights are computed when
the model is loaded for sampling, which costs the same for both (the same patches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY = Path(os.environ.get("COMFYUI_DIR", Path.home() / "ComfyUI")).expanduser()


def setup_paths() -> None:
    # the repo first: ComfyUI has its own `tests` package
    sys.path[:0] = [str(REPO), str(REPO / "custom_nodes"), str(COMFY)]
    import comfy.cli_args

    comfy.cli_args.args.cpu = True


def tiny_wan(path: Path, layers: int) -> None:
    """The harness's tiny WAN 2.2 i2v DiT recipe (dim 128, ffn 256), ``layers`` blocks."""
    import comfy.ops
    import torch
    from comfy.ldm.wan.model import WanModel
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1)
    dit = WanModel(model_type="t2v", in_dim=36, dim=128, ffn_dim=256, num_heads=1, num_layers=layers,
                   out_dim=16, operations=comfy.ops.disable_weight_init)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    save_file({k: v.contiguous() for k, v in dit.state_dict().items()}, str(path))


def timed(fn, repeats: int) -> tuple[float, float, object]:
    t0 = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=1, help="blocks in the tiny DiT (1 = the harness model)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    setup_paths()

    import comfy.lora
    import comfy.sd
    import folder_paths
    import nodes as core_nodes
    import torch
    from anime_pipeline.core.lora.stack import LoraRow
    from anime_pipeline.nodes.lora import AP_ApplyLoraStack
    from tests.loratools import WAN_LINEARS, wan_lora, write

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny_wan(tmp / "tiny.safetensors", args.layers)
        model = comfy.sd.load_diffusion_model(str(tmp / "tiny.safetensors"))
        loras = tmp / "loras"
        modules = [(p.replace("blocks.0.", f"blocks.{b}."), o, i) for b in range(args.layers) for p, o, i in WAN_LINEARS]
        names = [f"lora_{n}.safetensors" for n in range(4)]
        for n, name in enumerate(names):
            write(wan_lora(n, modules=modules), loras / name)
        folder_paths.folder_names_and_paths["loras"] = ([str(loras)], folder_paths.supported_pt_extensions)
        strengths = [1.0, 0.8, -0.5, 0.3]

        core_loaders = [core_nodes.LoraLoaderModelOnly() for _ in names]  # node instances persist in ComfyUI

        def core_chain():
            m = model
            for node, name, s in zip(core_loaders, names, strengths):
                (m,) = node.load_lora_model_only(m, name, s)
            return m

        ap_node = AP_ApplyLoraStack()
        stack = tuple(LoraRow(n, s) for n, s in zip(names, strengths))

        def ap_stack():
            return ap_node.apply(model, stack, "error", 0.5)[0]

        results = {"4 x core LoraLoaderModelOnly": timed(core_chain, args.repeats),
                   "AP_ApplyLoraStack (4 rows)": timed(ap_stack, args.repeats)}

        a, b = results["4 x core LoraLoaderModelOnly"][2], results["AP_ApplyLoraStack (4 rows)"][2]
        sd = model.model.state_dict()
        identical = a.patches.keys() == b.patches.keys() and all(
            torch.equal(comfy.lora.calculate_weight(a.patches[k], sd[k].clone(), k),
                        comfy.lora.calculate_weight(b.patches[k], sd[k].clone(), k)) for k in a.patches)
        changed = all(not torch.equal(comfy.lora.calculate_weight(b.patches[k], sd[k].clone(), k), sd[k])
                      for k in b.patches)

    n_keys = len(a.patches)
    print(f"tiny WAN DiT, {args.layers} block(s), 4 LoRAs x {len(modules)} modules (rank 4), {n_keys} weights patched, "
          f"CPU, torch {torch.__version__}")
    print(f"{'method':32s} {'cold ms':>9s} {'warm ms (median)':>17s}")
    for name, (cold, warm, _) in results.items():
        print(f"{name:32s} {cold * 1e3:9.2f} {warm * 1e3:17.2f}")
    core_cold, core_warm, _ = results["4 x core LoraLoaderModelOnly"]
    ap_cold, ap_warm, _ = results["AP_ApplyLoraStack (4 rows)"]
    print(f"ratio AP / core: cold {ap_cold / core_cold:.2f}x, warm {ap_warm / core_warm:.2f}x")
    print(f"patched weights bit-identical: {identical}; every patched weight differs from the base: {changed}")


if __name__ == "__main__":
    main()
