"""Job -> the exact API-format workflow to submit (pure: templates are read once, no server).

Each template key has one binder below that states every title it sets; the lists
are mirrored in ``workflows/README.md``. The same job, attempt and inputs always give
the same workflow, byte for byte, so its sha256 identifies a render for resuming."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.core.lora import registry as lora_registry
from driver.config import Config
from driver.errors import ConfigError
from driver.story.plan import (
    HELD_PUSH,
    HELD_STATIC,
    T2I_SDXL,
    T2I_UNET,
    TEMPLATE_KEYS,
    TRIPTYCH_SPLIT,
    WAN_FLF,
    WAN_SPLIT_FLF,
    Job,
    derive_seed,
    segment_seed,
)
from driver.story.storyboard import REPO_ROOT, Storyboard
from driver.validation import document_problems, raise_if_problems

from . import learned
from .workflow import (
    Binder,
    TemplateError,
    load_template,
    replace_with_one,
    titled_outputs,
    workflow_hash,
)

DEFAULT_TEMPLATES_DIR = REPO_ROOT / "workflows"
REPORT = "report"  # output role of the AP_QualityReport node

# save-node title -> output role, per template
OUTPUT_TITLES: dict[str, dict[str, str | None]] = {
    T2I_SDXL: {"Save Keyframe": None}, T2I_UNET: {"Save Keyframe": None},
    TRIPTYCH_SPLIT: {"Save First": "first", "Save Hero": "hero", "Save Last": "last"},
    WAN_FLF: {"Save Video": "video", "Quality Report": REPORT},
    WAN_SPLIT_FLF: {"Save Video": "video", "Quality Report": REPORT},
    HELD_PUSH: {"Save Video": "video"}, HELD_STATIC: {"Save Video": "video"},
}


@dataclass(frozen=True)
class Compiled:
    job: Job
    attempt: int
    seed: int
    prompt: dict
    sha256: str
    outputs: dict[str, str]  # output node id -> role
    prompt_id: str


def placeholder_inputs(job: Job) -> dict[str, str]:
    """Server image names for a dry run (no upload happened)."""
    return {i.role: f"dry-run/{job.shot}_{i.role}.png" for i in job.inputs}


class Compiler:
    def __init__(self, storyboard: Storyboard, config: Config, run_id: str):
        self.sb, self.config, self.run_id = storyboard, config, run_id
        self.profile = config.profile(storyboard.model_profile)
        tdir = config["templates_dir"]
        self.templates_dir = config.path(tdir) if tdir else DEFAULT_TEMPLATES_DIR
        self._templates: dict[str, dict] = {}
        self.registry, self.registry_text = self._load_registry()
        unknown = sorted(set(config["template_overrides"]) - set(TEMPLATE_KEYS))
        if unknown:
            raise ConfigError(f"template_overrides: unknown template(s) {unknown}; known: {', '.join(TEMPLATE_KEYS)}")

    # ------------------------------------------------------------------ inputs
    def _load_registry(self):
        path = self.config.path(self.config["lora_registry"])
        if path is None:
            return None, ""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            raise_if_problems(document_problems(doc), f"lora_registry {path}")  # NaN strengths, deep nesting
            reg = lora_registry.Registry.from_dict(doc, str(path))
        except OSError as exc:
            raise ConfigError(f"lora_registry: cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:  # JSON or schema problems (RegistryError is a ValueError)
            raise ConfigError(f"lora_registry: {exc or 'nested too deeply to read'}") from None
        return reg, json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def template_path(self, key: str) -> Path:
        name = self.config["templates"].get(key, f"{key}.api.json")
        return self.templates_dir / name

    def template(self, key: str) -> dict:
        if key not in self._templates:
            if key not in TEMPLATE_KEYS:
                raise TemplateError(f"unknown template key {key!r}")
            self._templates[key] = load_template(self.template_path(key))
        return self._templates[key]

    def characters(self, job: Job, kind: str) -> tuple[str, list[str]]:
        """(registry names joined for the node, trigger words) of the job's characters."""
        names = [self.sb.characters[c] for c in job.params.get("characters", ())]
        if not names or self.registry is None:
            return "", []
        try:
            _, triggers = lora_registry.resolve(self.registry, ", ".join(names), kind,
                                                self.config["character_strength_rule"])
        except ValueError as exc:
            raise ConfigError(f"characters: {exc}", shot=job.shot) from None
        return ", ".join(names), triggers

    def lora_files(self, job: Job) -> list[str]:
        """The character LoRA files the registry gives this job (for preflight)."""
        kind = {T2I_SDXL: "t2i", T2I_UNET: "t2i", WAN_FLF: "video", WAN_SPLIT_FLF: "video"}.get(job.template)
        names = [self.sb.characters[c] for c in job.params.get("characters", ())]
        if kind is None or not names or self.registry is None:
            return []
        rows, _ = lora_registry.resolve(self.registry, ", ".join(names), kind, self.config["character_strength_rule"])
        return [r.file for r in rows]

    # ------------------------------------------------------------------ compile
    def compile(self, job: Job, attempt: int = 1, inputs: dict[str, str] | None = None) -> Compiled:
        """The workflow of ``job``'s ``attempt``; ``inputs`` maps input roles to the
        names the server knows the uploaded images by (placeholders when omitted)."""
        inputs = inputs if inputs is not None else placeholder_inputs(job)
        missing = [i.role for i in job.inputs if i.role not in inputs]
        if missing:
            raise ConfigError(f"job {job.id}: no image for input(s) {missing}", shot=job.shot)
        seed = derive_seed(job.seed, attempt)
        b = Binder(self.template(job.template), self.template_path(job.template).name)
        prefix = f"ap/{self.run_id}/{job.id}_a{attempt}"
        getattr(self, f"_bind_{job.template}")(b, job, seed, inputs, prefix)
        for title, values in self.config["template_overrides"].get(job.template, {}).items():
            b.set(title, **values)  # project-wide settings, e.g. gate thresholds
        prompt = b.result()
        titles = {t: (role or job.outputs[0]) for t, role in OUTPUT_TITLES[job.template].items()}
        outputs = titled_outputs(prompt, titles)
        sha = workflow_hash(prompt)
        pid = f"{self.run_id}-{job.id}-a{attempt}-{sha[:8]}"
        return Compiled(job, attempt, seed, prompt, sha, outputs, pid)

    # ------------------------------------------------------------------ shared pieces
    def _character_loras(self, b: Binder, job: Job, kind: str, apply_passthrough: dict[int, str],
                         keep_apply: bool = False) -> list[str]:
        """Bind "Character LoRAs", or take it (and "Apply LoRAs" when nothing else feeds
        it) out of the graph for a shot without characters. Returns the trigger words."""
        names, triggers = self.characters(job, kind)
        if names:
            b.set("Character LoRAs", characters=names, kind=kind, registry=self.registry_text,
                  strength_rule=self.config["character_strength_rule"])
        else:
            b.bypass("Character LoRAs", {0: "lora_stack"})
            if not keep_apply:
                b.bypass("Apply LoRAs", apply_passthrough)
        return triggers

    @staticmethod
    def _prompt_text(prompt: str, triggers: list[str]) -> str:
        return ", ".join([*triggers, prompt]) if triggers else prompt

    def _conditioning(self, b: Binder, positive: str, negative: str) -> None:
        stub = self.profile.get("stub_conditioning")
        if stub:  # test configs only: a stand-in node replaces text encoding
            if b.has("Positive Prompt") and b.has("Negative Prompt"):
                replace_with_one(b.prompt, ["Positive Prompt", "Negative Prompt"], stub["node"],
                                 stub.get("inputs", {}), "Conditioning Stub")
            else:
                b.require("Positive Prompt", "Negative Prompt")
            return
        v = self.profile["video"]
        b.set("Text Encoder", clip_name=v["text_encoder"], type=v["text_encoder_type"])
        b.set("Positive Prompt", text=positive)
        b.set("Negative Prompt", text=negative)

    def _wan_models(self, b: Binder, job: Job) -> list[str]:
        """Bind the two experts, VAE, shift and the LoRA chain; returns trigger words."""
        v = self.profile["video"]
        b.set("High Noise Model", unet_name=v["unet_high"], weight_dtype=v["weight_dtype"])
        b.set("Low Noise Model", unet_name=v["unet_low"], weight_dtype=v["weight_dtype"])
        b.set("VAE", vae_name=v["vae"])
        b.set("Model Sampling", shift=v["shift"])
        speed = v.get("speed_loras")
        if speed:
            strength = speed.get("strength", 1.0)
            b.set("Speed LoRAs", lora_name_1=speed["high"], strength_model_1=strength, target_1="high",
                  lora_name_2=speed["low"], strength_model_2=strength, target_2="low")
        else:
            b.bypass("Speed LoRAs")
        return self._character_loras(b, job, "video", {0: "model_high", 1: "model_low"}, keep_apply=bool(speed))

    def _wan_samplers(self, b: Binder, seed: int, high: str, low: str) -> None:
        v = self.profile["video"]
        common = dict(noise_seed=seed, steps=v["steps"], cfg=v["cfg"], sampler_name=v["sampler"],
                      scheduler=v["scheduler"])
        b.set(high, add_noise="enable", start_at_step=0, end_at_step=v["split_step"],
              return_with_leftover_noise="enable", **common)
        b.set(low, add_noise="disable", start_at_step=v["split_step"], end_at_step=10000,
              return_with_leftover_noise="disable", **common)

    def _finish_video(self, b: Binder, job: Job, prefix: str) -> None:
        p = job.params
        clip_vision = self.profile["video"].get("clip_vision")
        if clip_vision:  # identity gate: the clip's character against its keyframes, in CLIP-vision space
            b.set("CLIP Vision", clip_name=clip_vision)
            b.require("Identity Gate", "Identity References")
        else:
            for title in ("Identity Gate", "Identity References", "CLIP Vision"):
                b.bypass(title)
        b.set("Quality Report", label=prefix.rsplit("/", 1)[-1], filename_prefix=f"{prefix}_quality")
        b.set("Retime", fps_in=float(p["wan_fps"]), fps_out=float(p["fps"]))
        b.set("Fit Frames", batch_index=0, length=p["frames"])
        b.set("Save Video", filename_prefix=f"{prefix}_video")
        learned.enhance_video(b, self.profile["video"], p)

    # ------------------------------------------------------------------ binders
    def _bind_t2i(self, b: Binder, job: Job, seed: int, prefix: str) -> None:
        t, p = self.profile["t2i"], job.params
        triggers = self._character_loras(b, job, "t2i", {0: "model", 1: "clip"})
        b.set("Positive Prompt", text=self._prompt_text(p["prompt"], triggers))
        b.set("Negative Prompt", text=p["negative"])
        b.set("Latent", width=p["width"], height=p["height"], batch_size=1)
        b.set("Sampler", seed=seed, steps=t["steps"], cfg=t["cfg"], sampler_name=t["sampler"], scheduler=t["scheduler"])
        b.set("Save Keyframe", filename_prefix=f"{prefix}_{job.outputs[0]}")

    def _bind_t2i_sdxl(self, b, job, seed, inputs, prefix):
        b.set("Checkpoint", ckpt_name=self.profile["t2i"]["checkpoint"])
        self._bind_t2i(b, job, seed, prefix)

    def _bind_t2i_unet(self, b, job, seed, inputs, prefix):
        t = self.profile["t2i"]
        b.set("Diffusion Model", unet_name=t["unet"], weight_dtype=t.get("weight_dtype", "default"))
        b.set("Text Encoder", clip_name=t["text_encoder"], type=t["text_encoder_type"])
        b.set("VAE", vae_name=t["vae"])
        b.set("Model Sampling", shift=t.get("shift", 3.1))
        self._bind_t2i(b, job, seed, prefix)

    def _bind_triptych_split(self, b, job, seed, inputs, prefix):
        b.set("Strip", image=inputs["strip"])
        loader = learned.upscaler(b, self.profile["video"], "keyframe_upscale_model", "Keyframe Upscale Model")
        if loader:  # panels at their split size, upscaled, then fitted to the keyframe size
            b.set("Triptych Split", target_width=0, target_height=0)
            for slot, role in enumerate(("first", "hero", "last")):
                learned.upscale(b, loader, "Triptych Split", slot, job.params["width"], job.params["height"],
                              f"Upscale {role.title()}")
        else:
            b.set("Triptych Split", target_width=job.params["width"], target_height=job.params["height"])
        for role in ("first", "hero", "last"):
            b.set(f"Save {role.title()}", filename_prefix=f"{prefix}_{role}")

    def _bind_wan22_flf(self, b, job, seed, inputs, prefix):
        p = job.params
        triggers = self._wan_models(b, job)
        self._conditioning(b, self._prompt_text(p["motion"], triggers), p["negative"])
        b.set("First Frame", image=inputs["first"])
        b.set("Last Frame", image=inputs["last"])
        b.set("First-Last Frame", width=p["width"], height=p["height"], length=p["length"], batch_size=1)
        self._wan_samplers(b, seed, "Sampler High", "Sampler Low")
        self._finish_video(b, job, prefix)

    def _bind_wan22_split_flf(self, b, job, seed, inputs, prefix):
        p = job.params
        triggers = self._wan_models(b, job)
        self._conditioning(b, self._prompt_text(p["motion"], triggers), p["negative"])
        for role in ("first", "hero", "last"):
            b.set(f"{role.title()} Frame", image=inputs[role])
        b.set("Segment A", width=p["width"], height=p["height"], length=p["length_a"], batch_size=1)
        b.set("Segment B", width=p["width"], height=p["height"], length=p["length_b"], batch_size=1)
        self._wan_samplers(b, seed, "Sampler A High", "Sampler A Low")
        self._wan_samplers(b, segment_seed(seed, 1), "Sampler B High", "Sampler B Low")
        self._finish_video(b, job, prefix)

    def _bind_held_push(self, b, job, seed, inputs, prefix):
        p = job.params
        b.set("Keyframe", image=inputs["hero"])
        b.set("Push", width=p["width"], height=p["height"], duration_s=p["duration_s"], fps=float(p["fps"]),
              zoom_start=p["zoom_start"], zoom_end=p["zoom_end"], center_x_start=p["center_start"][0],
              center_y_start=p["center_start"][1], center_x_end=p["center_end"][0], center_y_end=p["center_end"][1],
              easing=p["easing"])
        b.set("Save Video", filename_prefix=f"{prefix}_video")

    def _bind_held_static(self, b, job, seed, inputs, prefix):
        p = job.params
        b.set("Keyframe", image=inputs["hero"])
        b.set("Resize", width=p["width"], height=p["height"])
        b.set("Hold", amount=p["frames"])
        b.set("Create Video", fps=float(p["fps"]))
        b.set("Save Video", filename_prefix=f"{prefix}_video")
