"""Project config (YAML): servers, LoRA registry, model profiles, retakes, timeouts,
GPU-time table, output root.

A config file only states what differs from :data:`DEFAULTS`; it is deep-merged over
them and the result validated (every problem with its path, at once). Each entry of
``model_profiles`` is merged over :data:`PROFILE_DEFAULTS`, which mirror the official
ComfyUI WAN 2.2 14B first-last-frame template (lightx2v 4-step LoRA pair, 4 steps
split at 2, cfg 1, shift 5, euler / simple, 16 fps). Relative paths in a config file are
relative to that file."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError
from .validation import document_problems, raise_if_problems, schema_problems

WAN_VIDEO_DEFAULTS = {
    "unet_high": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
    "unet_low": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
    "weight_dtype": "default",
    "vae": "wan_2.1_vae.safetensors",
    "text_encoder": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "text_encoder_type": "wan",
    "clip_vision": None,  # e.g. clip_vision_h.safetensors: turns the identity gate on
    "speed_loras": {
        "high": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "low": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "strength": 1.0,
    },
    "steps": 4,
    "split_step": 2,
    "cfg": 1.0,
    "shift": 5.0,
    "sampler": "euler",
    "scheduler": "simple",
    "fps": 16.0,
    "max_segment": 81,
}

T2I_SDXL_DEFAULTS = {
    "family": "sdxl",
    "checkpoint": "sd_xl_base_1.0.safetensors",
    "steps": 28,
    "cfg": 6.0,
    "sampler": "dpmpp_2m",
    "scheduler": "karras",
    "strip_width": 1536,
    "strip_height": 912,
}

T2I_UNET_DEFAULTS = {  # Qwen-Image, as in ComfyUI's official qwen_image template
    "family": "unet",
    "unet": "qwen_image_fp8_e4m3fn.safetensors",
    "weight_dtype": "default",
    "text_encoder": "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    "text_encoder_type": "qwen_image",
    "vae": "qwen_image_vae.safetensors",
    "shift": 3.1,
    "steps": 20,
    "cfg": 2.5,
    "sampler": "euler",
    "scheduler": "simple",
    "strip_width": 1536,
    "strip_height": 912,
}

PROFILE_DEFAULTS = {"video": WAN_VIDEO_DEFAULTS, "t2i": T2I_SDXL_DEFAULTS, "stub_conditioning": None}

DEFAULTS = {
    "servers": ["http://127.0.0.1:8188"],
    "local_comfyui": "managed",
    "comfyui_dir": None,
    "comfyui_args": [],
    "lora_registry": None,
    "character_strength_rule": "scale_to_strongest",
    "output_root": "runs",
    "templates_dir": None,
    "templates": {},
    "template_overrides": {},
    "model_profiles": {
        "wan22_sdxl": {},
        "wan22_qwen_image": {"t2i": T2I_UNET_DEFAULTS},
    },
    "retakes": {"max_retakes": 2},
    "timeouts": {"job_s": 3600, "request_s": 30, "server_start_s": 180},
    "gpu": "rtx4090",
    "gpu_table": {
        # Published figures (ComfyUI's WAN 2.2 14B FLF template notes: RTX 4090D, fp8 +
        # 4-step LoRA, 81 frames at 640x640 ~ 108 s). Estimates scale linearly with
        # frames x pixels x steps: a rough planning figure, not a promise.
        "rtx4090": {"wan_ref_s": 108.0, "wan_ref": [81, 640, 640, 4], "t2i_s_per_mp_step": {"sdxl": 0.13, "unet": 1.6},
                    "vram_gb": 24, "ram_gb": 62},
    },
    # model loads (driver.farm.affinity has the sourced default figures): where the models
    # live, the ComfyUI cache the servers run with, and how far (estimated seconds of a job's
    # critical path) a job that needs no reload may go ahead of a more urgent one
    "scheduling": {"affinity": True, "max_delay_s": 300.0, "storage": "network_volume", "comfyui_cache": "default"},
}

_NUM = {"type": "number"}
_POS = {"type": "number", "exclusiveMinimum": 0}
_STR = {"type": "string", "minLength": 1}
_INT1 = {"type": "integer", "minimum": 1}

VIDEO_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["unet_high", "unet_low", "vae", "steps", "split_step", "cfg", "shift", "sampler", "scheduler", "fps"],
    "properties": {
        "unet_high": _STR, "unet_low": _STR, "weight_dtype": _STR, "vae": _STR,
        "text_encoder": _STR, "text_encoder_type": _STR, "clip_vision": {"type": ["string", "null"]},
        "speed_loras": {"oneOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False, "required": ["high", "low"],
            "properties": {"high": _STR, "low": _STR, "strength": _NUM}}]},
        "steps": _INT1, "split_step": _INT1, "cfg": _POS, "shift": {"type": "number", "minimum": 0},
        "sampler": _STR, "scheduler": _STR, "fps": _POS, "max_segment": {"type": "integer", "minimum": 5},
        # optional learned stages (models/upscale_models, models/interpolation); absent or null: off
        "keyframe_upscale_model": {"type": ["string", "null"]},
        "delivery_upscale_model": {"type": ["string", "null"]},
        "interpolator": {"type": ["string", "null"]},
    },
}
T2I_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["family", "steps", "cfg", "sampler", "scheduler"],
    "properties": {
        "family": {"enum": ["sdxl", "unet"]}, "checkpoint": _STR, "unet": _STR, "weight_dtype": _STR,
        "text_encoder": _STR, "text_encoder_type": _STR, "vae": _STR, "shift": {"type": "number", "minimum": 0},
        "steps": _INT1, "cfg": _POS, "sampler": _STR, "scheduler": _STR,
        "strip_width": {"type": "integer", "minimum": 192, "multipleOf": 8},
        "strip_height": {"type": "integer", "minimum": 64, "multipleOf": 8},
    },
    "allOf": [
        {"if": {"properties": {"family": {"const": "sdxl"}}}, "then": {"required": ["checkpoint"]}},
        {"if": {"properties": {"family": {"const": "unet"}}},
         "then": {"required": ["unet", "text_encoder", "text_encoder_type", "vae"]}},
    ],
}
CONFIG_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "servers": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^https?://"}},
        "local_comfyui": {"type": "string", "minLength": 1},
        "comfyui_dir": {"type": ["string", "null"]},
        "comfyui_args": {"type": "array", "items": {"type": "string"}},
        "lora_registry": {"type": ["string", "null"]},
        "character_strength_rule": {"enum": ["scale_to_strongest", "as_registered"]},
        "output_root": _STR,
        "templates_dir": {"type": ["string", "null"]},
        "templates": {"type": "object", "additionalProperties": _STR},
        "template_overrides": {"type": "object", "additionalProperties": {  # template key -> title -> inputs
            "type": "object", "additionalProperties": {"type": "object"}}},
        "model_profiles": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["video", "t2i"],
            "properties": {
                "video": VIDEO_SCHEMA, "t2i": T2I_SCHEMA,
                "stub_conditioning": {"oneOf": [{"type": "null"}, {
                    "type": "object", "additionalProperties": False, "required": ["node"],
                    "properties": {"node": _STR, "inputs": {"type": "object"}}}]},
            }}},
        "retakes": {"type": "object", "additionalProperties": False,
                    "properties": {"max_retakes": {"type": "integer", "minimum": 0, "maximum": 20}}},
        "timeouts": {"type": "object", "additionalProperties": False,
                     "properties": {"job_s": _POS, "request_s": _POS, "server_start_s": _POS}},
        "gpu": _STR,
        "gpu_table": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["wan_ref_s", "wan_ref", "t2i_s_per_mp_step"],
            "properties": {"wan_ref_s": _POS,
                           "wan_ref": {"type": "array", "items": _INT1, "minItems": 4, "maxItems": 4},
                           "t2i_s_per_mp_step": {"type": "object", "additionalProperties": _POS},
                           "vram_gb": _POS, "ram_gb": _POS,
                           "load_gbps": {"type": "object", "additionalProperties": _POS}}}},
        "scheduling": {"type": "object", "additionalProperties": False, "properties": {
            "affinity": {"type": "boolean"}, "max_delay_s": {"type": "number", "minimum": 0},
            "storage": _STR, "comfyui_cache": {"enum": ["default", "lru"]}}},
    },
}


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base``; dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Config:
    """The effective config. ``data`` is the merged, validated document (recorded in the
    manifest); ``base_dir`` is the folder relative paths in it are resolved against."""

    data: dict
    base_dir: Path
    source: Path | None = None

    def __getitem__(self, key):
        return self.data[key]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()

    def path(self, value: str | None) -> Path | None:
        return None if value is None else (self.base_dir / Path(value).expanduser()).resolve()

    def local_comfyui(self) -> str:
        """The ComfyUI to start when no server answers: ``managed``, ``none`` or a checkout's path (resolved
        against the config's folder). The older ``comfyui_dir`` key, when set, is such a path."""
        if self.data.get("comfyui_dir"):
            return str(self.path(self.data["comfyui_dir"]))
        value = self.data["local_comfyui"]
        return value if value.lower() in ("managed", "none") else str(self.path(value))

    def profile(self, name: str) -> dict:
        profiles = self.data["model_profiles"]
        if name not in profiles:
            raise ConfigError(f"model_profile: {name!r} is not a model profile of the config "
                              f"(known: {', '.join(sorted(profiles))})", problems=[f"model_profile: unknown {name!r}"])
        return profiles[name]

    @property
    def gpu_figures(self) -> dict:
        table = self.data["gpu_table"]
        if self.data["gpu"] not in table:
            known = ", ".join(sorted(table))
            raise ConfigError(f"gpu: {self.data['gpu']!r} has no entry in gpu_table (known: {known})")
        return table[self.data["gpu"]]

    def with_overrides(self, **overrides) -> Config:
        """A copy with ``overrides`` deep-merged over this config (command-line flags,
        test settings), revalidated."""
        return build_config({k: v for k, v in overrides.items() if v is not None}, self.base_dir, self.source,
                            base=self.data)


def build_config(user: dict, base_dir: Path, source: Path | None = None, base: dict | None = None) -> Config:
    where = source.name if source else "config"
    if not isinstance(user, dict):
        raise ConfigError(f"{where}: expected a mapping of settings at the top level, got {type(user).__name__}")
    raise_if_problems(document_problems(user), where)  # NaN, alias bombs, deep nesting: before anything walks it
    merged = deep_merge(base if base is not None else DEFAULTS, user)
    if base is None and isinstance(merged["model_profiles"], dict):  # not a mapping: the schema says so below
        merged["model_profiles"] = {name: deep_merge(PROFILE_DEFAULTS, p) if isinstance(p, dict) else p
                                    for name, p in merged["model_profiles"].items()}
    raise_if_problems(schema_problems(merged, CONFIG_SCHEMA), where)
    problems = [f"model_profiles.{n}.video.split_step: {p['video']['split_step']} must be below steps "
                f"({p['video']['steps']})"
                for n, p in merged["model_profiles"].items() if p["video"]["split_step"] >= p["video"]["steps"]]
    raise_if_problems(problems, where)
    return Config(merged, Path(base_dir).resolve(), source)


def load_config(path: str | Path | None) -> Config:
    """The effective config of ``path`` (``None``: the defaults, relative to the cwd)."""
    if path is None:
        return build_config({}, Path.cwd())
    path = Path(path)
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path.name} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config {path.name}: nested too deeply to read") from None
    return build_config(user, path.resolve().parent, path.resolve())
