"""Nodes of the ``anime_pipeline/lora`` family: build LoRA stacks and apply them exactly as
chained core ``LoraLoader`` nodes would, but loudly.

A LoRA made for another base model is the most common silent failure in ComfyUI (core
only logs ``lora key not loaded``). These nodes count, before patching anything, how many
of each LoRA's keys the model would use, and stop the run below ``min_match``.

Patching is ComfyUI's own: ``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``
for the key map, ``comfy.lora_convert.convert_lora``, ``comfy.lora.load_lora`` and
``clone().add_patches(...)`` (patches are added, base weights are never copied). Every
decision before that is in ``core/lora`` and unit-tested without ComfyUI.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

from ..core.errors import InputError
from ..core.lora.apply import (ON_MISMATCH, Application, Target, build_report, check_min_match, check_on_mismatch,
                               prepare)
from ..core.lora.files import LoraFileCache
from ..core.lora.matching import relevant_key_map
from ..core.lora.pairing import plan_wan22
from ..core.lora.paths import resolve_file
from ..core.lora.registry import DEFAULT_REGISTRY, KINDS, STRENGTH_RULES, load_registry, resolve
from ..core.lora.stack import (AUTO, BOTH, NONE, STRENGTH_LIMIT, TARGETS, check_stack, extend_stack,
                               row_from_widgets)

log = logging.getLogger("anime_pipeline")

CATEGORY = "anime_pipeline/lora"
STACK = "AP_LORA_STACK"
ROWS = 6
FILE_CACHE = LoraFileCache()  # shared by every node: each file is read once (LRU, path + size + mtime)

_STACK_TIP = "LoRA rows from a LoRA Stack (AP) or LoRA Stack From Registry (AP) node."
_MISMATCH_TIP = ("What to do with a LoRA whose key match is below min_match: 'error' stops the run before anything "
                 "is patched; 'warn' logs it and applies it anyway (what core LoraLoader silently does).")
_MIN_MATCH_TIP = ("Smallest fraction of a LoRA's keys (those meant for the connected models) that must match the "
                  "model. A LoRA made for another base model matches almost none. 0 disables the check.")


def _lora_names() -> list[str]:
    try:
        import folder_paths
    except ImportError:  # outside ComfyUI (unit tests, the driver)
        return []
    return folder_paths.get_filename_list("loras")


def _lora_dirs() -> list[str]:
    import folder_paths

    return list(folder_paths.get_folder_paths("loras"))


def _strength(tip: str) -> tuple:
    return ("FLOAT", {"default": 1.0, "min": -STRENGTH_LIMIT, "max": STRENGTH_LIMIT, "step": 0.01, "tooltip": tip})


def _check_inputs() -> dict:
    return {
        "on_mismatch": (list(ON_MISMATCH), {"default": ON_MISMATCH[0], "tooltip": _MISMATCH_TIP}),
        "min_match": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": _MIN_MATCH_TIP}),
    }


@contextmanager
def _naming(input_name: str, node: str):
    """Re-raise a core ``ValueError`` as an :class:`InputError` naming the node input."""
    try:
        yield
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(input_name, str(exc), node) from None


# ---------------------------------------------------------------------- ComfyUI glue
def _target(name: str, model, clip=None) -> Target:
    """Key map and weight shapes of ``model`` (+ ``clip``), as ``load_lora_for_models`` builds them."""
    import comfy.lora

    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    shapes = {k: tuple(v.shape) for k, v in model.model.state_dict().items()}
    if clip is not None:
        key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
        shapes.update((k, tuple(v.shape)) for k, v in clip.cond_stage_model.state_dict().items())
    return Target(name, key_map, shapes, text_encoder=clip is not None)


def _prepare(node: str, apps, targets, min_match, on_mismatch):
    """Resolve, read (cached), convert and count every application; raise before patching."""
    import comfy.lora_convert
    import comfy.utils

    dirs = _lora_dirs()

    def open_file(name: str):
        return FILE_CACHE.get(resolve_file(name, dirs), name,
                              loader=lambda path: comfy.utils.load_torch_file(path, safe_load=True))

    with _naming("min_match", node):
        check_min_match(min_match)
    with _naming("on_mismatch", node):
        check_on_mismatch(on_mismatch)
    with _naming("lora_stack", node):
        return prepare(apps, targets, open_file, convert=comfy.lora_convert.convert_lora,
                       min_match=min_match, on_mismatch=on_mismatch)


def _patch(patcher, prepared, key_map, *, clip=None):
    """Clone ``patcher`` (and ``clip``) once and add each LoRA's patches in order:
    numerically what chained ``LoraLoader`` nodes do. Unchanged inputs come back as is."""
    import comfy.lora

    new_model = new_clip = None
    for p in prepared:
        if not p.applies:
            continue
        patches = comfy.lora.load_lora(p.lora, relevant_key_map(p.lora, key_map), log_missing=False)
        if p.app.strength_model != 0:
            new_model = patcher.clone() if new_model is None else new_model
            new_model.add_patches(patches, p.app.strength_model)
        if clip is not None and p.app.strength_clip:
            new_clip = clip.clone() if new_clip is None else new_clip
            new_clip.add_patches(patches, p.app.strength_clip)
        m = p.match
        log.info("LoRA %s -> %s: %d/%d keys matched (%.0f%%), %d weights patched", p.app.file, p.app.target,
                 m.keys_matched, m.keys_considered, 100 * m.fraction, m.weights_patched)
    return (patcher if new_model is None else new_model), (clip if new_clip is None else new_clip)


def _report(node, prepared, min_match, on_mismatch, notes=()) -> str:
    return json.dumps(build_report(node, prepared, min_match=min_match, on_mismatch=on_mismatch, notes=notes),
                      indent=2)


# ---------------------------------------------------------------------- nodes
class AP_LoraStack:
    @classmethod
    def INPUT_TYPES(cls):
        names = [NONE] + _lora_names()
        required = {}
        for i in range(1, ROWS + 1):
            required[f"lora_name_{i}"] = (names, {"default": NONE, "tooltip": f"Row {i}: a LoRA file from the loras "
                                                  "folder, or None to leave the row empty."})
            required[f"strength_model_{i}"] = _strength(f"Row {i}: strength on the diffusion model (may be negative).")
            required[f"strength_clip_{i}"] = _strength(f"Row {i}: strength on CLIP (text encoder); ignored when no "
                                                       "CLIP is connected and by the WAN 2.2 node.")
            required[f"target_{i}"] = (list(TARGETS), {"default": AUTO, "tooltip": (
                f"Row {i}: WAN 2.2 expert (used by Apply LoRA Stack WAN 2.2 only). auto: by 'high_noise'/'low_noise' "
                "in the file name, bringing the other half of the pair; high / low: that expert; both: both experts.")})
        return {"required": required,
                "optional": {"lora_stack": (STACK, {"tooltip": "Rows to put first (chain stacks); never modified."})}}

    RETURN_TYPES = (STACK,)
    RETURN_NAMES = ("lora_stack",)
    OUTPUT_TOOLTIPS = ("The upstream rows followed by this node's rows (empty rows and rows with both strengths 0 "
                       "dropped).",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Builds or extends a stack of up to 6 LoRAs (file, model and CLIP strengths, WAN 2.2 target). "
                   "Apply it with Apply LoRA Stack (AP) or Apply LoRA Stack WAN 2.2 (AP).")

    def build(self, lora_stack=None, **rows):
        node = "AP_LoraStack"
        upstream = check_stack(lora_stack, node=node)
        new = [row_from_widgets(i, rows[f"lora_name_{i}"], rows[f"strength_model_{i}"], rows[f"strength_clip_{i}"],
                                rows[f"target_{i}"], node=node) for i in range(1, ROWS + 1)]
        return (extend_stack(upstream, [r for r in new if r is not None]),)


class AP_ApplyLoraStack:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch."}),
                "lora_stack": (STACK, {"tooltip": _STACK_TIP}),
                **_check_inputs(),
            },
            "optional": {"clip": ("CLIP", {"tooltip": "The text encoder to patch with each row's strength_clip. "
                                           "Without it, text-encoder keys are not counted against min_match."})},
        }

    RETURN_TYPES = ("MODEL", "CLIP", "STRING")
    RETURN_NAMES = ("model", "clip", "report")
    OUTPUT_TOOLTIPS = ("The patched diffusion model (the input is left untouched).",
                       "The patched CLIP (None when no CLIP was connected).",
                       "JSON report: per LoRA the file, strengths, keys matched and match fraction.")
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Applies a LoRA stack to a model (and CLIP): the same result as chaining core LoraLoader nodes, but "
                   "a LoRA whose keys do not fit the model (made for another base model) stops the run instead of "
                   "silently doing nothing.")

    def apply(self, model, lora_stack, on_mismatch, min_match, clip=None):
        node = "AP_ApplyLoraStack"
        rows = check_stack(lora_stack, node=node)
        wan = [f"row {i} ({r.file}): target {r.target!r}" for i, r in enumerate(rows, 1) if r.target not in (AUTO, BOTH)]
        if wan:
            raise InputError("lora_stack", "rows for one WAN 2.2 expert need Apply LoRA Stack WAN 2.2 (AP): "
                             + "; ".join(wan), node)
        target = _target("model", model, clip)
        apps = [Application(i, r.file, "model", r.strength_model, r.strength_clip if clip is not None else None)
                for i, r in enumerate(rows, 1)]
        prepared = _prepare(node, apps, {"model": target}, min_match, on_mismatch)
        new_model, new_clip = _patch(model, prepared, target.key_map, clip=clip)
        return (new_model, new_clip, _report(node, prepared, min_match, on_mismatch))


class AP_ApplyLoraStackWan22:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_high": ("MODEL", {"tooltip": "The WAN 2.2 high-noise expert (first sampler pass)."}),
                "model_low": ("MODEL", {"tooltip": "The WAN 2.2 low-noise expert (second sampler pass)."}),
                "lora_stack": (STACK, {"tooltip": _STACK_TIP + " strength_model is used; strength_clip is ignored."}),
                **_check_inputs(),
            }
        }

    RETURN_TYPES = ("MODEL", "MODEL", "STRING")
    RETURN_NAMES = ("model_high", "model_low", "report")
    OUTPUT_TOOLTIPS = ("The patched high-noise expert.", "The patched low-noise expert.",
                       "JSON report: per file and expert the strength, keys matched and match fraction.")
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Applies a LoRA stack to the two WAN 2.2 experts. A '..._high_noise...' file goes on the "
                   "high-noise model only and brings its '..._low_noise...' sibling for the low-noise model (and the "
                   "reverse); other files go where their row's target says. Same checks as Apply LoRA Stack (AP).")

    def apply(self, model_high, model_low, lora_stack, on_mismatch, min_match):
        node = "AP_ApplyLoraStackWan22"
        rows = check_stack(lora_stack, node=node)
        with _naming("lora_stack", node):
            plan, notes = plan_wan22(rows, _lora_names())
        for note in notes:
            log.warning("%s: %s", node, note)
        targets = {"model_high": _target("model_high", model_high), "model_low": _target("model_low", model_low)}
        apps = [Application(a.row, a.file, f"model_{a.role}", a.strength, None, a.note) for a in plan]
        prepared = _prepare(node, apps, targets, min_match, on_mismatch)
        outs = {}
        for name, model in (("model_high", model_high), ("model_low", model_low)):
            mine = [p for p in prepared if p.app.target == name]
            outs[name] = _patch(model, mine, targets[name].key_map)[0]
        return (outs["model_high"], outs["model_low"], _report(node, prepared, min_match, on_mismatch, notes))


class AP_LoraStackFromRegistry:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "characters": ("STRING", {"default": "", "tooltip": "Comma-separated character names as written in "
                                          "the registry, e.g. 'jinx, vi'."}),
                "kind": (list(KINDS), {"default": KINDS[0], "tooltip": "t2i: each character's image LoRA; video: each "
                                       "character's WAN 2.2 high-noise + low-noise pair."}),
                "strength_rule": (list(STRENGTH_RULES), {"default": STRENGTH_RULES[0], "tooltip": (
                    "scale_to_strongest: with several characters, scale their strengths so together they do not "
                    "exceed the strongest single one (1.0 + 1.0 -> 0.5 / 0.5); as_registered: keep them.")}),
                "registry": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    f"Inline registry JSON, or a .json file name in the loras folder; empty: {DEFAULT_REGISTRY} in "
                    "the loras folder. Format: docs/lora_registry.md.")}),
            },
            "optional": {"lora_stack": (STACK, {"tooltip": "Rows to put first (e.g. a style LoRA); never modified."})},
        }

    RETURN_TYPES = (STACK, "STRING")
    RETURN_NAMES = ("lora_stack", "trigger_words")
    OUTPUT_TOOLTIPS = ("The upstream rows followed by the characters' LoRAs.",
                       "The characters' trigger words, comma-separated, to put into the prompt.")
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Looks characters up in the LoRA registry and outputs their LoRAs as stack rows (video: the "
                   "high/low pair) and their trigger words, with strengths scaled for multi-character shots.")

    @classmethod
    def IS_CHANGED(cls, registry="", **_):
        """Re-run when the registry file changes on disk (inline JSON is part of the inputs)."""
        text = (registry or "").strip() if isinstance(registry, str) else None
        if text is None:
            return float("nan")
        if text.startswith("{"):
            return ""
        try:
            st = resolve_file(text or DEFAULT_REGISTRY, _lora_dirs(), what="LoRA registry").stat()
        except (ValueError, OSError, ImportError):
            return float("nan")  # let the run raise the proper error
        return f"{st.st_size}:{st.st_mtime_ns}"

    def build(self, characters, kind, strength_rule, registry, lora_stack=None):
        node = "AP_LoraStackFromRegistry"
        upstream = check_stack(lora_stack, node=node)
        with _naming("registry", node):
            reg = load_registry(registry, _lora_dirs())
        with _naming("characters", node):
            rows, triggers = resolve(reg, characters, kind, strength_rule)
        return (extend_stack(upstream, rows), ", ".join(triggers))


NODE_CLASS_MAPPINGS = {
    "AP_LoraStack": AP_LoraStack,
    "AP_ApplyLoraStack": AP_ApplyLoraStack,
    "AP_ApplyLoraStackWan22": AP_ApplyLoraStackWan22,
    "AP_LoraStackFromRegistry": AP_LoraStackFromRegistry,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AP_LoraStack": "LoRA Stack (AP)",
    "AP_ApplyLoraStack": "Apply LoRA Stack (AP)",
    "AP_ApplyLoraStackWan22": "Apply LoRA Stack WAN 2.2 (AP)",
    "AP_LoraStackFromRegistry": "LoRA Stack From Registry (AP)",
}
