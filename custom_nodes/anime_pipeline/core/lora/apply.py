"""Everything decided before a LoRA stack touches a model: files read and checked, keys
counted, ``min_match`` enforced, the report built.

The node then only patches (``comfy.lora.load_lora`` + ``ModelPatcher.add_patches``). All
the checks of :func:`prepare` run for every row before the first patch, so a bad row
leaves the model given in untouched, and one error lists every bad row at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .matching import MatchResult, match_keys, mismatch_message

log = logging.getLogger("anime_pipeline")

ERROR, WARN = "error", "warn"
ON_MISMATCH = (ERROR, WARN)
APPLIED, BELOW_MIN_MATCH, SKIPPED = "applied", "below_min_match", "skipped"


@dataclass(frozen=True)
class Target:
    """A model to patch, as data: its LoRA key map (LoRA prefix -> weight key, from
    ``comfy.lora.model_lora_keys_unet`` [+ ``model_lora_keys_clip``]) and weight shapes."""

    name: str  # "model", "model_high", "model_low": used in messages and the report
    key_map: Mapping[str, object]
    shapes: Mapping[str, tuple] | None = None
    text_encoder: bool = False  # a CLIP is patched along with it; its keys are in key_map


@dataclass(frozen=True)
class Application:
    """One file applied to one target with its strengths."""

    row: int  # 1-based row of the stack
    file: str
    target: str
    strength_model: float
    strength_clip: float | None = None  # None: no CLIP is patched
    note: str = ""


@dataclass(frozen=True)
class Prepared:
    app: Application
    status: str  # applied / below_min_match (applied anyway: on_mismatch="warn") / skipped
    lora: Mapping | None = None  # the converted LoRA state dict; None when skipped
    match: MatchResult | None = None

    @property
    def applies(self) -> bool:
        """Whether this LoRA gets patched in (it was read: not skipped)."""
        return self.lora is not None


def check_min_match(min_match: float) -> float:
    if isinstance(min_match, bool) or not isinstance(min_match, (int, float)) or not math.isfinite(min_match) \
            or not 0.0 <= min_match <= 1.0:
        raise ValueError(f"must be a fraction in 0..1, got {min_match!r}")
    return float(min_match)


def check_on_mismatch(on_mismatch: str) -> str:
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"must be one of {list(ON_MISMATCH)}, got {on_mismatch!r}")
    return on_mismatch


def prepare(apps: Sequence[Application], targets: Mapping[str, Target], open_file: Callable[[str], Mapping], *,
            convert: Callable[[dict], Mapping] = dict, min_match: float = 0.5, on_mismatch: str = ERROR
            ) -> list[Prepared]:
    """Read, check and count every application; raise one ``ValueError`` for all problems.

    ``open_file(name)`` returns the checked LoRA state dict (raising ``ValueError`` for a
    missing / invalid file). ``convert`` gets a shallow copy of it (ComfyUI's
    ``convert_lora`` may rename keys in place) and returns the dict to count and patch.
    A row with zero strength on every component it would patch is skipped unread, as
    core ``LoraLoader`` does."""
    try:
        check_min_match(min_match)
        check_on_mismatch(on_mismatch)
    except ValueError as exc:
        raise ValueError(f"min_match / on_mismatch: {exc}") from None
    out: list[Prepared] = []
    problems: list[str] = []
    for app in apps:
        target = targets[app.target]
        if app.strength_model == 0 and not (target.text_encoder and app.strength_clip != 0):
            out.append(Prepared(app, SKIPPED))
            continue
        try:
            lora = convert(dict(open_file(app.file)))
        except ValueError as exc:
            problems.append(f"row {app.row}: {exc}")
            continue
        result = match_keys(lora, target.key_map, text_encoder=target.text_encoder, shapes=target.shapes)
        status = APPLIED
        if result.keys_considered == 0 or result.fraction < min_match:
            where = target.name.replace("_", " ") + (" and CLIP" if target.text_encoder else "")
            message = f"row {app.row}: {mismatch_message(app.file, result, min_match, f'the {where}')}"
            if on_mismatch == ERROR:
                problems.append(message)
                continue
            log.warning("LoRA stack: %s (on_mismatch=warn: applied anyway)", message)
            status = BELOW_MIN_MATCH
        out.append(Prepared(app, status, lora, result))
    if problems:
        hint = "" if on_mismatch == WARN else " (set on_mismatch to 'warn' to apply LoRAs below min_match anyway)"
        raise ValueError(f"{len(problems)} LoRA(s) cannot be applied; nothing was patched{hint}:\n  "
                         + "\n  ".join(problems))
    return out


def build_report(node: str, prepared: Sequence[Prepared], *, min_match: float, on_mismatch: str,
                 notes: Sequence[str] = ()) -> dict:
    """The JSON-ready report: one entry per application, in patch order."""
    entries = []
    for p in prepared:
        a = p.app
        entry = {"row": a.row, "file": a.file, "target": a.target, "strength_model": a.strength_model}
        if a.strength_clip is not None:
            entry["strength_clip"] = a.strength_clip
        entry["status"] = p.status
        if a.note:
            entry["note"] = a.note
        if p.match is not None:
            entry.update(p.match.to_dict())
        entries.append(entry)
    return {"node": node, "min_match": min_match, "on_mismatch": on_mismatch, "loras": entries, "notes": list(notes)}
