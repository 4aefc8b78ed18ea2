"""What loading a job's models costs on a server, for the dispatcher's affinity and the
estimates (pure: no I/O).

A server's *state* is what ComfyUI still holds when the next prompt arrives
(:mod:`driver.render.models` explains the cache): with the default cache, the model set
of the previous prompt only; with ``--cache-lru N`` (``cache="lru"``), the most recent
model sets that fit in ``ram_gb`` of system RAM. A loader whose signature is held costs
nothing (default cache; LRU: the set the last prompt used) or a copy from RAM to the GPU
(LRU: an older set, offloaded to RAM); any other loader reads its files from storage.

Default figures (GB/s, 1 GB = 1e9 bytes), each with its source; a pod's real figure
depends on its host, so a project can set its own (config ``gpu_table.<gpu>.load``):

* ``nvme`` 3.5: sequential read of a PCIe Gen3 NVMe SSD (gigagpu.com "Fix disk I/O
  bottleneck": Gen3 ~3,500 MB/s, Gen4 ~7,000 MB/s); a spec ceiling, real loads are slower.
* ``container_image`` 3.5: RunPod's docs rate the container disk "Fastest (local)"
  (docs.runpod.io/pods/storage): taken as the local NVMe figure.
* ``network_volume`` 0.3: RunPod's docs give no figure, only "Variable (network)" (pods)
  and "Fast (networked NVMe)" (serverless storage overview); 0.3 is the middle of the
  100-500 MB/s sequential range a third-party comparison gives for network block storage
  (gist.github.com/Hardik94). Measure your volume (``dd``/``fio``) and set it.
* RAM -> GPU 20: "RAM (tmpfs): ~20,000+ MB/s" (gigagpu.com, same page); below PCIe 4.0
  x16's 32 GB/s.

Model file sizes (GB): the issue's figures for WAN 2.2 (two 14B experts ~14 GB each in
fp8, a ~6 GB text encoder); the others from parameter counts x bytes per parameter
(SDXL 3.5 B in fp16 = 7; Qwen-Image 20 B in fp8 = 20; Qwen2.5-VL 7 B in fp8 = 8; CLIP
vision H 0.63 B in fp16 = 1.3); VAEs 0.25 and LoRAs 0.3 (4-step LoRAs 0.6) are round
stated defaults. An unknown file takes its kind's default, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

STORAGE_GBPS = {"nvme": 3.5, "container_image": 3.5, "network_volume": 0.3}
DEFAULT_STORAGE = "network_volume"
RAM_TO_GPU_GBPS = 20.0
DEFAULT_RAM_GB = 62.0  # an RTX 4090 community pod's RAM is of this order (runpod.io GPU listing); set your own
CACHES = ("default", "lru")

FILE_GB = {
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": 14.3,
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": 14.3,
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": 6.7,
    "wan_2.1_vae.safetensors": 0.25,
    "sd_xl_base_1.0.safetensors": 6.9,
    "qwen_image_fp8_e4m3fn.safetensors": 20.4,
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": 9.4,
    "qwen_image_vae.safetensors": 0.25,
    "clip_vision_h.safetensors": 1.3,
    "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors": 0.6,
    "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors": 0.6,
}
KIND_GB = {"checkpoint": 6.9, "unet": 14.3, "text_encoder": 6.7, "vae": 0.25, "clip_vision": 1.3,
           "upscaler": 0.07, "lora": 0.3}


def file_gb(name: str, kind: str, sizes: dict[str, float] | None = None) -> float:
    """GB of one model file: ``sizes`` (the project's), else the known file, else its kind's default."""
    return {**FILE_GB, **(sizes or {})}.get(name, KIND_GB.get(kind, 1.0))


def loader_gb(loader: Any, sizes: dict[str, float] | None = None) -> float:
    """GB a loader reads: its files' sizes (a LoRA applier with no literal file: one
    LoRA of the default size)."""
    if not loader.files:
        return KIND_GB.get(loader.kind, 1.0) if loader.kind == "lora" else 0.0
    return sum(file_gb(f, loader.kind, sizes) for f in loader.files)


def unknown_files(loaders: Iterable[Any], sizes: dict[str, float] | None = None) -> list[str]:
    known = {**FILE_GB, **(sizes or {})}
    return sorted({f for ld in loaders for f in ld.files if f not in known})


class Affinity(Protocol):
    """What the dispatcher needs (:class:`LoadCosts` is one): seconds to run ``models``
    on a server in ``state``, the state after it, whether it keeps the state."""

    slack_s: float

    def cost(self, state: Hashable, models: Any) -> float: ...
    def after(self, state: Hashable, models: Any) -> Hashable: ...
    def keeps(self, state: Hashable, models: Any) -> bool: ...


@dataclass
class LoadCosts:
    """Seconds to make a model set ready on a server, and the state after it. States are
    hashable: ``None`` (nothing known loaded) or a tuple of model sets, most recent last.
    ``slack_s``: how far (seconds of critical path) a cheaper job may jump ahead of the
    best-priority one in the dispatcher."""

    storage: str = DEFAULT_STORAGE
    cache: str = "default"
    ram_gb: float = DEFAULT_RAM_GB
    vram_gb: float = 24.0
    gbps: float | None = None
    sizes: dict[str, float] = field(default_factory=dict)
    slack_s: float = float("inf")

    def __post_init__(self) -> None:
        if self.cache not in CACHES:
            raise ValueError(f"cache must be one of {CACHES}, got {self.cache!r}")
        if self.gbps is None:
            if self.storage not in STORAGE_GBPS:
                log.warning("no load throughput known for storage %r; using %s's %.1f GB/s",
                            self.storage, DEFAULT_STORAGE, STORAGE_GBPS[DEFAULT_STORAGE])
            self.gbps = STORAGE_GBPS.get(self.storage, STORAGE_GBPS[DEFAULT_STORAGE])

    def gb(self, loader: Any) -> float:
        return loader_gb(loader, self.sizes)

    def split(self, state: Hashable, models: frozenset | None) -> tuple[float, float, int]:
        """(GB read from storage, GB copied from RAM, loader runs) to run ``models`` next."""
        if models is None:
            return 0.0, 0.0, 0
        held: tuple = state if isinstance(state, tuple) else ()
        last = {ld.signature for ld in held[-1]} if held else set()
        older = {ld.signature for s in held[:-1] for ld in s} if self.cache == "lru" else set()
        if older and sum(self.gb(ld) for s in held for ld in s) <= self.vram_gb:
            last |= older  # everything held fits in GPU memory together: nothing to copy
        disk = ram = 0.0
        runs = 0
        for ld in models:
            if ld.signature in last:
                continue
            runs += 1
            if ld.signature in older:
                ram += self.gb(ld)
            else:
                disk += self.gb(ld)
        return disk, ram, runs

    def cost(self, state: Hashable, models: frozenset | None) -> float:
        disk, ram, _ = self.split(state, models)
        assert self.gbps is not None
        return disk / self.gbps + ram / RAM_TO_GPU_GBPS

    def after(self, state: Hashable, models: frozenset | None) -> Hashable:
        if models is None:
            return None  # an unreadable set: assume it left nothing we know of
        if self.cache == "default":
            return (models,)
        held = [s for s in (state if isinstance(state, tuple) else ()) if s != models] + [models]
        while len(held) > 1 and sum(self.gb(ld) for s in held for ld in s) > self.ram_gb:
            held.pop(0)  # least recently used set first
        return tuple(held)

    def keeps(self, state: Hashable, models: frozenset | None) -> bool:
        """Whether ``models`` is the set the server ran last (running it changes nothing)."""
        return isinstance(state, tuple) and bool(state) and state[-1] == models



def _held(state: Hashable) -> dict[str, Any]:
    return {ld.signature: ld for s in (state if isinstance(state, tuple) else ()) for ld in s}


def choose(aff: Affinity, state: Hashable, queues: Sequence[Sequence[Any]],
           others: Sequence[tuple[Hashable, bool]] = ()) -> int | None:
    """Which queue a server in ``state`` serves next, or None to stay idle. ``queues``: per
    model set, waiting requests (``priority``, ``models``, ``estimate``; comparable, best
    first at ``[0]``); ``others``: (state, busy) of the other servers that are up. Only
    queues whose head is within ``aff.slack_s`` of the best priority compete, and of those
    not a job left to another server that has its models (:func:`leave_to_holder`); among the rest: the
    least load now plus the reload of what it would evict that other waiting jobs still
    use (so a model-free job, which empties the default cache, waits while jobs reuse
    what is loaded), then the set already loaded, then priority."""
    best = min(q[0].priority for q in queues)
    near = [i for i, q in enumerate(queues)
            if q[0].priority <= best + aff.slack_s and not leave_to_holder(aff, state, q[0], others)]
    if not near:
        return None
    held = _held(state)

    def key(i: int) -> tuple:
        models = queues[i][0].models
        lost = held.keys() - _held(aff.after(state, models)).keys()
        wanted = {ld.signature for j in near if j != i for ld in (queues[j][0].models or ())}
        evicted = frozenset(held[sig] for sig in lost & wanted)
        return aff.cost(state, models) + aff.cost(None, evicted), not aff.keeps(state, models), queues[i][0]
    return min(near, key=key)


def leave_to_holder(aff: Affinity, state: Hashable, request: Any, others: Sequence[tuple[Hashable, bool]]) -> bool:
    """Whether a free server in ``state`` should leave ``request`` to another server that runs
    its model set: always when that server is free too (it runs it without a load), and
    when it is busy if loading the set here would take longer than the job itself (its
    ``estimate``; unknown: never). Short jobs of a set (keyframes: 4 s of sampling behind
    a 23 s checkpoint load from a network volume) then queue on the server that has the
    set instead of spreading the set over the farm; a long job (a WAN clip) is worth its
    load and never waits. The holder takes them when it is free; if it goes down, it is
    no longer up and the jobs go anywhere."""
    cost = aff.cost(state, request.models)
    if cost <= 0:
        return False
    holders = [busy for other, busy in others if aff.keeps(other, request.models)]
    if not all(holders):  # a free holder (all([]) is True: no holder at all)
        return True
    return bool(holders) and request.estimate is not None and cost > request.estimate
