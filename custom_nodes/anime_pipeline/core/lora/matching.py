"""Key-match accounting: how much of a LoRA file a model would actually use.

ComfyUI applies a LoRA by looking up every *module prefix* of its key map (built by
``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``: LoRA prefix -> model
weight key) in the file, under a fixed set of adapter suffixes (``.lora_up.weight``,
``.lora_A.weight``, ``.alpha``, ``.hada_w1_a`` ...). Every key it does not consume is
only logged (``lora key not loaded: ...``) and the render goes on without it: a LoRA made
for another base model silently does nothing. This module repeats that lookup on the key
names, taking the key map as plain data, so the count is testable without ComfyUI.

A key *matches* when it is ``<prefix><suffix>`` with ``prefix`` in the key map and
``suffix`` an adapter suffix, and (for plain LoRA up/down pairs and ``.diff`` patches)
the product has the shape of the model weight: a LoRA for a model of the same family but
another size (WAN 1.3B on 14B) has matching names and wrong shapes, and ComfyUI only
logs ``ERROR ... shape`` when it patches.

Text-encoder keys (``lora_te*``, ``text_encoder*``) are only counted when a text encoder
(CLIP) is being patched: an SDXL LoRA applied to the UNet alone is judged on its UNet keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

# (up, down) key suffixes of the plain-LoRA formats ComfyUI reads (comfy/weight_adapter/lora.py)
UP_DOWN = (
    (".lora_up.weight", ".lora_down.weight"),
    ("_lora.up.weight", "_lora.down.weight"),
    (".lora_B.weight", ".lora_A.weight"),
    (".lora.up.weight", ".lora.down.weight"),
    (".lora_B", ".lora_A"),
    (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"),
    (".lora_B.default.weight", ".lora_A.default.weight"),
)
# every other suffix an adapter (LoRA extras, LoHa, LoKr, GLoRA, OFT/BOFT) or raw patch consumes
OTHER_SUFFIXES = (
    ".alpha", ".dora_scale", ".lora_mid.weight", ".reshape_weight",
    ".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1", ".hada_t2",
    ".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w1_b", ".lokr_w2_a", ".lokr_w2_b", ".lokr_t2",
    ".a1.weight", ".a2.weight", ".b1.weight", ".b2.weight",
    ".oft_blocks", ".rescale",
    ".w_norm", ".b_norm", ".diff", ".diff_b", ".set_weight",
)
SUFFIXES = tuple(sorted({s for pair in UP_DOWN for s in pair} | set(OTHER_SUFFIXES), key=len, reverse=True))

_TEXT_ENCODER = re.compile(r"^(lora_te\d*_|lora_prior_te_|text_encoders?(_\d+)?\.)")

# a rough guess of what a LoRA was made for, from its key names (first hit wins)
_FAMILIES = (
    (re.compile(r"(^|[._])(input_blocks|output_blocks|middle_block)[._]"), "SD 1.x / SDXL (UNet)"),
    (re.compile(r"(^|[._])(down_blocks|up_blocks|mid_block)[._]"), "SD 1.x / SDXL (diffusers UNet)"),
    (re.compile(r"(^|[._])(double_blocks|single_blocks|single_transformer_blocks)[._]"), "Flux / HunyuanVideo"),
    (re.compile(r"(^|[._])blocks[._]\d+[._](self_attn|cross_attn|ffn)[._]"), "WAN"),
    (re.compile(r"(^|[._])joint_blocks[._]"), "SD3"),
    (re.compile(r"(^|[._])transformer_blocks[._]"), "a diffusers transformer (Qwen-Image, PixArt, ...)"),
)


def is_text_encoder_key(key: str) -> bool:
    return bool(_TEXT_ENCODER.match(key))


def is_adapter_key(key: str) -> bool:
    """Whether ``key`` ends in a suffix some ComfyUI adapter reads."""
    return key.endswith(SUFFIXES)


def guess_family(keys) -> str | None:
    """What the LoRA's key names look like it was made for, or ``None``."""
    for pattern, family in _FAMILIES:
        if any(pattern.search(k) for k in keys):
            return family
    return None


def relevant_key_map(lora_keys, key_map: Mapping[str, object]) -> dict:
    """The entries of ``key_map`` whose prefix starts some key of the LoRA, in key-map order.

    ``comfy.lora.load_lora(lora, key_map)`` looks every prefix ``x`` of the key map up as
    ``x`` + a suffix that starts with ``.`` or ``_`` (``.lora_up.weight``,
    ``_lora.up.weight``, ``.alpha``, ``.diff`` ...); a prefix that starts no key yields no
    patch. So the patches from this (much smaller) map are exactly the patches from the
    full one, found without trying every adapter on thousands of absent prefixes."""
    starts: set[str] = set()
    for key in lora_keys:
        starts.update(key[:i] for i, ch in enumerate(key) if ch in "._")
    return {x: v for x, v in key_map.items() if x in starts}


def _module_of(key: str, key_map: Mapping[str, object]) -> tuple[str, str] | None:
    for suffix in SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in key_map:
            return key[: -len(suffix)], suffix
    return None


def _target_key(value) -> str | None:
    # key-map values are a weight key, or (key, offset[, function]) for a slice (Flux qkv)
    return value if isinstance(value, str) else None


def _shape_ok(prefix: str, suffix: str, lora: Mapping, target_shape) -> bool:
    if target_shape is None:
        return True
    numel = math.prod(target_shape)
    if suffix in (".diff", ".set_weight"):
        return tuple(lora[prefix + suffix].shape) == tuple(target_shape)
    for up_s, down_s in UP_DOWN:
        if suffix in (up_s, down_s):
            up, down = lora.get(prefix + up_s), lora.get(prefix + down_s)
            if up is None or down is None or prefix + ".lora_mid.weight" in lora or prefix + ".reshape_weight" in lora:
                return True  # incomplete pair / LoCon mid / reshape: let ComfyUI decide
            if up.ndim < 2 or down.ndim < 2 or math.prod(up.shape[1:]) != down.shape[0]:
                return False
            return up.shape[0] * math.prod(down.shape[1:]) == numel
    return True


@dataclass(frozen=True)
class MatchResult:
    """Key counts of one LoRA file against one model (plus CLIP if given)."""

    keys_total: int
    keys_considered: int  # keys meant for the components being patched
    keys_matched: int
    keys_text_encoder_skipped: int = 0  # text-encoder keys not counted (no CLIP given)
    keys_wrong_shape: int = 0  # names match, shapes do not
    weights_patched: int = 0  # distinct model weights the matched keys patch
    unmatched_examples: tuple[str, ...] = ()
    family_guess: str | None = None  # what the unmatched keys look like

    @property
    def fraction(self) -> float:
        """Matched / considered; 0.0 when nothing is meant for the components given."""
        return self.keys_matched / self.keys_considered if self.keys_considered else 0.0

    def to_dict(self) -> dict:
        return {
            "keys_total": self.keys_total, "keys_considered": self.keys_considered,
            "keys_matched": self.keys_matched, "match": round(self.fraction, 4),
            "keys_text_encoder_skipped": self.keys_text_encoder_skipped,
            "keys_wrong_shape": self.keys_wrong_shape, "weights_patched": self.weights_patched,
            "unmatched_examples": list(self.unmatched_examples),
        }


def match_keys(lora: Mapping, key_map: Mapping[str, object], *, text_encoder: bool,
               shapes: Mapping[str, tuple] | None = None, examples: int = 5) -> MatchResult:
    """Count the keys of ``lora`` (name -> tensor; only ``.shape``/``.ndim`` are read)
    that ``key_map`` would consume.

    ``text_encoder``: a CLIP is patched too (its keys are in ``key_map``), so
    text-encoder keys count. ``shapes``: model weight key -> shape, for the shape check
    (skipped when ``None``)."""
    considered = matched = te_skipped = wrong_shape = 0
    unmatched: list[str] = []
    patched: set[str] = set()
    for key in lora:
        if not text_encoder and is_text_encoder_key(key):
            te_skipped += 1
            continue
        considered += 1
        hit = _module_of(key, key_map)
        if hit is not None:
            prefix, suffix = hit
            target = _target_key(key_map[prefix])
            if shapes is None or _shape_ok(prefix, suffix, lora, shapes.get(target) if target else None):
                matched += 1
                patched.add(target or prefix)
                continue
            wrong_shape += 1
        unmatched.append(key)
    return MatchResult(
        keys_total=len(lora), keys_considered=considered, keys_matched=matched,
        keys_text_encoder_skipped=te_skipped, keys_wrong_shape=wrong_shape, weights_patched=len(patched),
        unmatched_examples=tuple(sorted(unmatched)[:examples]),
        family_guess=guess_family(unmatched) if unmatched else None,
    )


def mismatch_message(file: str, result: MatchResult, min_match: float, target: str = "the model") -> str:
    """The error for a LoRA below ``min_match``: file, fraction, likely cause."""
    if result.keys_considered == 0:
        return (f"{file!r}: none of its {result.keys_total} keys are for {target} (all "
                f"{result.keys_text_encoder_skipped} are text-encoder keys and no CLIP is connected)")
    msg = (f"{file!r}: only {result.keys_matched} of {result.keys_considered} keys "
           f"({result.fraction:.0%}) match {target}, below min_match {min_match:g}. ")
    if result.keys_wrong_shape and result.keys_wrong_shape * 2 >= result.keys_considered - result.keys_matched:
        msg += (f"{result.keys_wrong_shape} keys have the right names but the wrong shapes: it was most likely "
                "made for another size of this model family (e.g. WAN 1.3B vs 14B).")
    else:
        made_for = f" ({result.family_guess}, judging by its keys)" if result.family_guess else ""
        msg += f"It was most likely made for another base model{made_for}."
    if result.unmatched_examples:
        msg += f" Unmatched keys include {', '.join(result.unmatched_examples[:3])}."
    return msg
