"""The model files a compiled workflow loads, and which of its loaders ComfyUI runs again.

Pure: reads an API-format prompt, never changes it (scheduling never changes a compiled
workflow). What "loaded" means follows ComfyUI 0.3.64's ``comfy_execution/caching.py``:
a node's cache key is its *input signature* (class type, literal inputs and, recursively,
its ancestors' signatures; the node id only for ``NOT_IDEMPOTENT`` nodes). With the
default cache (``HierarchicalCache``) every ``set_prompt`` + ``clean_unused`` drops the
outputs of all keys the new prompt does not use, so a loader's output (the model
object; once dropped, ComfyUI frees its weights) survives only into the *next* prompt,
and only if that prompt holds a loader with the same signature; a cached loader is
listed in that prompt's ``execution_cached`` event. With ``--cache-lru N``
(``LRUCache``) up to N node outputs stay cached across prompts (evicted by least recent
use), so both model sets of an episode stay in system RAM when N and the RAM allow.

A :class:`Loader` is one loader node's signature and the files it reads; a model set is
the frozenset of a prompt's loaders. :func:`loads` counts the loaders a prompt runs
after another on one server with the default cache: the figure the driver records
(``AttemptRecord.loaders``) and the integration test compares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

#: ComfyUI's stock loaders: class type -> (kind, the inputs naming model files)
LOADERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CheckpointLoaderSimple": ("checkpoint", ("ckpt_name",)),
    "CheckpointLoader": ("checkpoint", ("ckpt_name",)),
    "UNETLoader": ("unet", ("unet_name",)),
    "CLIPLoader": ("text_encoder", ("clip_name",)),
    "DualCLIPLoader": ("text_encoder", ("clip_name1", "clip_name2")),
    "TripleCLIPLoader": ("text_encoder", ("clip_name1", "clip_name2", "clip_name3")),
    "VAELoader": ("vae", ("vae_name",)),
    "CLIPVisionLoader": ("clip_vision", ("clip_name",)),
    "UpscaleModelLoader": ("upscaler", ("model_name",)),
    "LoraLoader": ("lora", ("lora_name",)),
    "LoraLoaderModelOnly": ("lora", ("lora_name",)),
}
#: the pack's nodes that read LoRA files (named by an upstream AP_LoraStack or the registry)
LORA_APPLIERS = frozenset({"AP_ApplyLoraStack", "AP_ApplyLoraStackWan22"})
_LORA_NAME_PREFIX = "lora_name_"


@dataclass(frozen=True)
class Loader:
    kind: str               # checkpoint, unet, text_encoder, vae, clip_vision, upscaler, lora
    class_type: str
    files: tuple[str, ...]  # model file names it reads (LoRA appliers: the literal ones upstream)
    signature: str          # sha256 of ComfyUI's input signature: equal signatures share a cache entry


ModelSet = frozenset  # frozenset[Loader]


@dataclass(frozen=True)
class Models:
    """A prompt's loader nodes (node id -> Loader); ``unknown`` names loader-like nodes
    this module cannot read (an artist's custom loader): such a job is scheduled as today."""

    nodes: Mapping[str, Loader]
    unknown: tuple[str, ...] = ()

    @property
    def set(self) -> ModelSet | None:
        return None if self.unknown else frozenset(self.nodes.values())


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _signature(prompt: dict, node_id: str, memo: dict[str, str], stack: frozenset = frozenset()) -> str:
    """The node's class, literal inputs and its ancestors' signatures, hashed (links in
    sorted-input order, as ComfyUI's ``CacheKeySetInputSignature``)."""
    if node_id in memo:
        return memo[node_id]
    node = prompt.get(node_id)
    if node is None or node_id in stack:
        return "missing"
    parts: list = [node.get("class_type")]
    for key in sorted(node.get("inputs") or {}):
        v = node["inputs"][key]
        parts.append([key, ["link", _signature(prompt, v[0], memo, stack | {node_id}), v[1]] if _is_link(v) else v])
    memo[node_id] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return memo[node_id]


def _lora_files(prompt: dict, node_id: str, seen: set[str]) -> list[str]:
    """LoRA file names literal in the applier's ancestry (``AP_LoraStack`` slots)."""
    out: list[str] = []
    for v in (prompt.get(node_id, {}).get("inputs") or {}).values():
        if _is_link(v) and v[0] not in seen:
            seen.add(v[0])
            up = prompt.get(v[0], {})
            if up.get("class_type") in LOADERS or up.get("class_type") in LORA_APPLIERS:
                continue  # a model path, not the stack
            out += [x for k, x in sorted((up.get("inputs") or {}).items())
                    if k.startswith(_LORA_NAME_PREFIX) and isinstance(x, str) and x != "None"]
            out += _lora_files(prompt, v[0], seen)
    return out


def models_of(prompt: dict) -> Models:
    """The loader nodes of an API-format prompt."""
    memo: dict[str, str] = {}
    nodes: dict[str, Loader] = {}
    unknown: list[str] = []
    for nid, node in prompt.items():
        ct = node.get("class_type", "")
        inputs = node.get("inputs") or {}
        if ct in LOADERS:
            kind, names = LOADERS[ct]
            files = tuple(str(inputs[n]) for n in names if isinstance(inputs.get(n), str))
        elif ct in LORA_APPLIERS:
            kind, files = "lora", tuple(sorted(set(_lora_files(prompt, nid, set()))))
        else:
            if "Loader" in ct and not ct.startswith("AP_"):
                unknown.append(f"{nid} ({ct})")
            continue
        nodes[nid] = Loader(kind, ct, files, _signature(prompt, nid, memo))
    return Models(nodes, tuple(unknown))


def model_set(prompt: dict) -> ModelSet | None:
    """The prompt's loaders, or None when it has a loader this module cannot read."""
    return models_of(prompt).set


def loads(previous: ModelSet | None, current: ModelSet | None) -> int:
    """Loader nodes ``current`` runs right after ``previous`` on one server with the
    default cache (None before: a fresh server, or an unreadable set)."""
    if current is None:
        return 0
    return len({ld.signature for ld in current} - {ld.signature for ld in previous or ()})


def predicted_loads(sequence: list[ModelSet | None]) -> int:
    """Loader runs of prompts run in this order on one fresh server, default cache."""
    total, prev = 0, None
    for cur in sequence:
        total += loads(prev, cur)
        prev = cur
    return total


def ran_and_cached(prompt: dict, history_entry: dict) -> dict[str, list[str]] | None:
    """Which of the prompt's loader nodes ran and which came from the cache, from the
    ``execution_cached`` event ComfyUI sends on the websocket and keeps in the history
    entry's status messages (so a recovered attempt has it too). Node ids, sorted; None
    when the entry has no such event."""
    cached: set[str] | None = None
    for msg in (history_entry.get("status") or {}).get("messages", []):
        if isinstance(msg, (list, tuple)) and len(msg) == 2 and msg[0] == "execution_cached":
            cached = (cached or set()) | {str(n) for n in (msg[1] or {}).get("nodes", [])}
    if cached is None:
        return None
    loader_ids = sorted(models_of(prompt).nodes, key=str)
    return {"ran": [n for n in loader_ids if n not in cached], "cached": [n for n in loader_ids if n in cached]}
