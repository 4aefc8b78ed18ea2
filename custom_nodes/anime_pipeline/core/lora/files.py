"""Finding, reading, checking and caching LoRA files.

Files are read once and kept in a bounded LRU cache keyed by resolved path, size and
modification time, so a file replaced on disk is read again. A file enters the cache only
after it passed :func:`check_lora`: a bad file raises every time, with the same message.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

import torch

from .matching import is_adapter_key

log = logging.getLogger("anime_pipeline")

SAFETENSORS_EXT = (".safetensors", ".sft")


def read_lora(path: str | os.PathLike) -> dict:
    """Read a LoRA file the way ``comfy.utils.load_torch_file(path, safe_load=True)`` does:
    safetensors by its extension, anything else with ``torch.load(weights_only=True)``."""
    path = str(path)
    if path.lower().endswith(SAFETENSORS_EXT):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd


def check_lora(sd, name: str) -> dict:
    """Check a loaded file is a usable LoRA; returns it. Raises ``ValueError`` naming it.

    Usable: a non-empty mapping of names to tensors, at least one key an adapter reads
    (``.lora_up.weight``, ``.lora_A.weight``, ``.diff``...), no NaN or inf."""
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError(f"{name!r} holds no tensors ({'empty' if isinstance(sd, Mapping) else type(sd).__name__})")
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{name!r} is not a LoRA: {len(not_tensors)} entries are not tensors "
                         f"(e.g. {not_tensors[0]!r})")
    if not any(is_adapter_key(k) for k in sd):
        example = next(iter(sd))
        raise ValueError(f"{name!r} is not a LoRA: none of its {len(sd)} keys ends in a LoRA suffix such as "
                         f"'.lora_up.weight' or '.lora_A.weight' (e.g. {example!r}); is it a full model checkpoint?")
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(_finite_view(v)).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(f"{name!r} has NaN or inf values in {len(bad)} tensor(s): {', '.join(sorted(bad)[:3])}{more}")
    return dict(sd)


def _finite_view(t: torch.Tensor) -> torch.Tensor:
    # isfinite is not implemented for the float8 types on every backend
    return t if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else t.float()


def load_checked(path: str | os.PathLike, name: str, loader: Callable[[str], Mapping] = read_lora) -> dict:
    """``loader(path)`` then :func:`check_lora`; a file the loader cannot parse raises a
    ``ValueError`` saying it is not a valid safetensors / LoRA file."""
    try:
        sd = loader(str(path))
    except Exception as exc:  # safetensors, pickle and OS errors have no common base
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "safetensors" if str(path).lower().endswith(SAFETENSORS_EXT) else "LoRA"
        raise ValueError(f"{name!r} is not a valid {kind} file ({path}): {reason}") from None
    return check_lora(sd, name)


def _nbytes(sd: Mapping) -> int:
    return sum(t.numel() * t.element_size() for t in sd.values())


class LoraFileCache:
    """Bounded LRU cache of checked LoRA files keyed by (path, size, mtime).

    ``max_entries`` and ``max_bytes`` (tensor bytes) bound it; least recently used files
    go first. A file larger than ``max_bytes`` is returned but not kept. The returned
    dicts are shared: callers must not modify them (copy before converting keys)."""

    def __init__(self, max_entries: int = 16, max_bytes: int = 4 << 30):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[tuple[int, int], dict, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0

    def get(self, path: str | os.PathLike, name: str | None = None,
            loader: Callable[[str], Mapping] = read_lora) -> dict:
        """The checked contents of ``path``, from the cache when size and mtime still match."""
        key = os.path.realpath(path)
        st = os.stat(key)
        sig = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == sig:
                self._items.move_to_end(key)
                self.hits += 1
                return hit[1]
        sd = load_checked(key, name or os.path.basename(key), loader)
        size = _nbytes(sd)
        with self._lock:
            self.misses += 1
            self._drop(key)
            if size <= self.max_bytes:
                self._items[key] = (sig, sd, size)
                self.nbytes += size
                while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
                    log.debug("LoRA cache: evicting %s", next(iter(self._items)))
                    self._drop(next(iter(self._items)))
        return sd

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.nbytes -= item[2]
