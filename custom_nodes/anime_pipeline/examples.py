"""The pack's example workflows: the input images they load and the model files they name.

The weight-free examples load pictures drawn by the project's own code (shipped in
``example_inputs/``). ComfyUI's ``LoadImage`` reads them from its ``input/`` folder, so
copy them there once (the managed install does it by itself):

    cd ComfyUI/custom_nodes && ../venv/bin/python -m anime_pipeline.examples ../input

Model files are named in each loader node's ``properties.models``
(``[{"name", "url", "directory"}]``), which ComfyUI's frontend reads to list missing
files, with a download button for ``.safetensors`` files from Hugging Face or Civitai.
``MODEL_SOURCES`` is the one table of names, folders and official sources.

Pure Python: importing this module imports neither ComfyUI nor torch.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent
EXAMPLE_INPUTS = PACK_DIR / "example_inputs"
EXAMPLE_WORKFLOWS = PACK_DIR / "example_workflows"

_HF = "https://huggingface.co/"
_WAN22 = _HF + "Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/"
_WAN21 = _HF + "Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/"
_QWEN = _HF + "Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/"


def _official(base: str, folder: str, *names: str) -> dict[str, tuple[str, str]]:
    return {name: (folder, f"{base}{folder}/{name}") for name in names}


# file name (the loader's widget value) -> (models folder, official source; None for the
# artist's own files, which no one can download). Sources as in ComfyUI's own templates,
# or the model's own release for files those do not name.
MODEL_SOURCES: dict[str, tuple[str, str | None]] = {
    **_official(_WAN22, "diffusion_models", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"),
    **_official(_WAN22, "loras", "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"),
    **_official(_WAN22, "vae", "wan_2.1_vae.safetensors"),
    **_official(_WAN21, "text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
    **_official(_WAN21, "clip_vision", "clip_vision_h.safetensors"),
    **_official(_QWEN, "diffusion_models", "qwen_image_fp8_e4m3fn.safetensors"),
    **_official(_QWEN, "text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors"),
    **_official(_QWEN, "vae", "qwen_image_vae.safetensors"),
    "sd_xl_base_1.0.safetensors":
        ("checkpoints", _HF + "stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"),
    # Real-ESRGAN's anime video upscaler, a release asset of the official repository.
    "realesr-animevideov3.pth":
        ("upscale_models", "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth"),
    # RIFE 4.9, from the release ComfyUI-Frame-Interpolation downloads its RIFE checkpoints from first.
    "rife49.pth":
        ("interpolation", "https://github.com/styler00dollar/VSGAN-tensorrt-docker/releases/download/models/rife49.pth"),
    "characters/jinx_wan22_i2v_high_noise.safetensors": ("loras", None),
    "characters/jinx_wan22_i2v_low_noise.safetensors": ("loras", None),
}
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".onnx")
# AP_ApplyLoraStackWan22 loads the low-noise sibling of every high-noise LoRA it is given.
SIBLING = ("_high_noise", "_low_noise")


def is_model_file(value: object) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def model_entry(name: str) -> dict:
    """``{"name", "url", "directory"}`` for a known file (``url`` None for own files).
    KeyError for a file missing from ``MODEL_SOURCES``."""
    directory, url = MODEL_SOURCES[name]
    return {"name": name, "url": url, "directory": directory}


def node_model_files(node: dict) -> list[str]:
    """Model file names among a UI-format node's widget values, in order, once each."""
    values = node.get("widgets_values") or []
    values = values.values() if isinstance(values, dict) else values
    return list(dict.fromkeys(v for v in values if is_model_file(v)))


def sibling_files(nodes: list[dict]) -> list[str]:
    """Low-noise siblings a WAN 2.2 LoRA stack brings in without naming them in a widget."""
    if not any(n.get("type") == "AP_ApplyLoraStackWan22" and n.get("mode", 0) != 4 for n in nodes):
        return []
    named = {f for n in nodes for f in node_model_files(n)}
    return [f.replace(*SIBLING) for n in nodes if n.get("type", "").startswith("AP_LoraStack")
            for f in node_model_files(n) if SIBLING[0] in f and f.replace(*SIBLING) not in named]


def example_model_files(workflow: dict) -> list[str]:
    """Every model file an example needs to run: those named by its active (not
    bypassed, not muted) nodes, plus the LoRA siblings. Empty for a weight-free example."""
    active = [n for n in workflow["nodes"] if n.get("mode", 0) == 0]
    files = [f for n in active for f in node_model_files(n)]
    return list(dict.fromkeys(files + sibling_files(active)))


def copy_example_inputs(input_dir: str | Path) -> list[Path]:
    """Copy the examples' input images into ComfyUI's ``input/`` folder (created if
    needed). A file already there under an example's name is left alone, even if the
    artist changed it. Returns the paths of every example input in ``input_dir``."""
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    placed = []
    for src in sorted(p for p in EXAMPLE_INPUTS.iterdir() if p.is_file()):
        dest = input_dir / src.name
        if not dest.exists():
            shutil.copyfile(src, dest)
        placed.append(dest)
    return placed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m anime_pipeline.examples",
                                description="Copy the example workflows' input images into ComfyUI's input folder.")
    p.add_argument("input_dir", type=Path, help="ComfyUI's input folder, e.g. ComfyUI/input")
    args = p.parse_args(argv)
    if args.input_dir.exists() and not args.input_dir.is_dir():
        p.error(f"{args.input_dir} is not a folder")
    try:
        placed = copy_example_inputs(args.input_dir)
    except OSError as exc:
        p.exit(1, f"could not copy the example inputs into {args.input_dir}: {exc}\n")
    print(f"{len(placed)} example inputs in {args.input_dir}: {', '.join(p.name for p in placed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
