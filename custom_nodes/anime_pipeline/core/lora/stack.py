"""LoRA stack rows: the value carried on the ``AP_LORA_STACK`` socket.

A stack is a ``tuple`` of frozen :class:`LoraRow`. Both are immutable, so a node that
extends a stack builds a new tuple and never changes what an upstream node returned
(ComfyUI caches node outputs and hands the same object to every consumer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError

NONE = "None"  # the combo entry meaning "no LoRA in this row"
AUTO, HIGH, LOW, BOTH = "auto", "high", "low", "both"
TARGETS = (AUTO, HIGH, LOW, BOTH)
STRENGTH_LIMIT = 100.0  # same range as core LoraLoader (-100..100)


@dataclass(frozen=True)
class LoraRow:
    """One LoRA in a stack.

    ``file`` is a name relative to ComfyUI's ``loras`` folder(s). ``target`` only matters
    to the WAN 2.2 two-model node: ``high`` / ``low`` pick one expert, ``both`` applies the
    file to both, ``auto`` decides by ``high_noise`` / ``low_noise`` in the file name."""

    file: str
    strength_model: float = 1.0
    strength_clip: float = 1.0
    target: str = AUTO

    def __post_init__(self):
        if not isinstance(self.file, str) or not self.file.strip() or self.file == NONE:
            raise ValueError(f"file must be a LoRA file name, got {self.file!r}")
        for name in ("strength_model", "strength_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or abs(value) > STRENGTH_LIMIT:
                raise ValueError(f"{name} {value!r} is outside -{STRENGTH_LIMIT:g}..{STRENGTH_LIMIT:g}")
            object.__setattr__(self, name, float(value))
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is not one of {list(TARGETS)}")

    @property
    def is_noop(self) -> bool:
        return self.strength_model == 0 and self.strength_clip == 0

    def to_dict(self) -> dict:
        return {"file": self.file, "strength_model": self.strength_model,
                "strength_clip": self.strength_clip, "target": self.target}


def check_stack(value, input_name: str = "lora_stack", *, node: str | None = None) -> tuple[LoraRow, ...]:
    """Return ``value`` as a tuple of rows, or raise naming ``input_name``.

    ``None`` (an unconnected optional input) is the empty stack."""
    if value is None:
        return ()
    if not isinstance(value, (tuple, list)):
        raise InputError(input_name, f"expected an AP_LORA_STACK (tuple of LoRA rows), got {type(value).__name__}",
                         node)
    bad = [i for i, row in enumerate(value, 1) if not isinstance(row, LoraRow)]
    if bad:
        raise InputError(input_name, f"row(s) {bad} are not LoRA rows (got {type(value[bad[0] - 1]).__name__}); "
                         "connect the output of a LoRA Stack (AP) node", node)
    return tuple(value)


def extend_stack(upstream, rows: Iterable[LoraRow]) -> tuple[LoraRow, ...]:
    """A new stack: the upstream rows first, then ``rows`` (neither is modified)."""
    return tuple(upstream or ()) + tuple(rows)


def row_from_widgets(slot: int, file: str, strength_model: float, strength_clip: float, target: str,
                     *, node: str | None = None) -> LoraRow | None:
    """Build the row of widget slot ``slot`` (1-based) of the stack node.

    Returns ``None`` for a row that is switched off: file ``None`` or both strengths 0.
    Bad values raise an :class:`InputError` naming the widget (``strength_model_2``...)."""
    if file in (None, "", NONE):
        return None
    try:
        row = LoraRow(file, strength_model, strength_clip, target)
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        field = field if field in ("strength_model", "strength_clip", "target") else "lora_name"
        raise InputError(f"{field}_{slot}", str(exc), node) from None
    return None if row.is_noop else row
