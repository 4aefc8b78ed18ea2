"""Apply a 4-LoRA stack with AP_ApplyLoraStack vs 4 chained core LoraLoaderModelOnly
nodes, on the tiny random WAN 2.2 DiT, in one run; also checks that both give
bit-identical patched weights.

Needs ComfyUI's Python, with ComfyUI and the pack importable (it imports ComfyUI
in-process, on CPU); from the repository root:

    PYTHONPATH=custom_nodes:$COMFYUI_DIR $COMFYUI_DIR/.venv/bin/python -m benchmarks.bench_lora [--layers 1]

Times are wall
clock per apply, medians: "cold" reads the 4 files (fresh core node instances / the
pack's file cache emptied; the OS page cache is warm for both), "warm" has them in memory
(core keeps them on its node instances, the pack in its LRU cache), as from the second
run of a workflow on. Cold and warm runs alternate between the two methods. Applying
only adds patches; the weights are computed when the model is loaded for sampling, which
costs the same for both (the same patches).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path



def setup_paths() -> None:
    """ComfyUI in CPU mode (ComfyUI and the pack come from PYTHONPATH: see above)."""
    try:
        import comfy.cli_args
    except ImportError:
        sys.exit("bench_lora: ComfyUI is not importable; run it as PYTHONPATH=custom_nodes:$COMFYUI_DIR "
                 "<ComfyUI's python> -m benchmarks.bench_lora")

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


def clock(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=1, help="blocks in the tiny DiT (1 = the harness model)")
    ap.add_argument("--repeats", type=int, default=15, help="cold and warm runs per method")
    args = ap.parse_args()
    setup_paths()

    import comfy.lora
    import comfy.sd
    import folder_paths
    import nodes as core_nodes
    import torch
    from anime_pipeline.core.lora.stack import LoraRow
    from anime_pipeline.nodes.lora import FILE_CACHE, AP_ApplyLoraStack
    from devkit.loratools import WAN_LINEARS, wan_lora, write

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

        core_loaders = []  # node instances persist in ComfyUI and keep their file

        def core_chain(cold: bool):
            if cold or not core_loaders:
                core_loaders[:] = [core_nodes.LoraLoaderModelOnly() for _ in names]
            m = model
            for node, name, s in zip(core_loaders, names, strengths):
                (m,) = node.load_lora_model_only(m, name, s)
            return m

        ap_node = AP_ApplyLoraStack()
        stack = tuple(LoraRow(n, s) for n, s in zip(names, strengths))

        def ap_stack(cold: bool):
            if cold:
                FILE_CACHE.clear()
            return ap_node.apply(model, stack, "error", 0.5)[0]

        methods = {"4 x core LoraLoaderModelOnly": core_chain, "AP_ApplyLoraStack (4 rows)": ap_stack}
        times = {name: {"cold": [], "warm": []} for name in methods}
        outs = {name: fn(True) for name, fn in methods.items()}  # first calls: one-time warm-ups of both
        for i in range(args.repeats):
            for kind in ("cold", "warm"):
                for name, fn in (methods.items() if i % 2 else reversed(methods.items())):
                    dt, outs[name] = clock(lambda: fn(kind == "cold"))
                    times[name][kind].append(dt)

        a, b = outs.values()
        sd = model.model.state_dict()
        identical = a.patches.keys() == b.patches.keys() and all(
            torch.equal(comfy.lora.calculate_weight(a.patches[k], sd[k].clone(), k),
                        comfy.lora.calculate_weight(b.patches[k], sd[k].clone(), k)) for k in a.patches)
        changed = all(not torch.equal(comfy.lora.calculate_weight(b.patches[k], sd[k].clone(), k), sd[k])
                      for k in b.patches)

    n_keys = len(a.patches)
    print(f"tiny WAN DiT, {args.layers} block(s), 4 LoRAs x {len(modules)} modules (rank 4), {n_keys} weights patched, "
          f"CPU, torch {torch.__version__}")
    med = {name: {k: statistics.median(v) * 1e3 for k, v in t.items()} for name, t in times.items()}
    print(f"{'method (median of ' + str(args.repeats) + ')':32s} {'cold ms':>9s} {'warm ms':>9s}")
    for name, m in med.items():
        print(f"{name:32s} {m['cold']:9.2f} {m['warm']:9.2f}")
    core, ap = med.values()
    print(f"ratio AP / core: cold {ap['cold'] / core['cold']:.2f}x, warm {ap['warm'] / core['warm']:.2f}x")
    print(f"patched weights bit-identical: {identical}; every patched weight differs from the base: {changed}")


if __name__ == "__main__":
    main()
