"""WAN 2.2 high-noise / low-noise pairing: which file goes on which expert.

WAN 2.2 14B renders with two models (a high-noise and a low-noise expert) and video
LoRAs come as two files named by convention ``..._high_noise...`` / ``..._low_noise...``
(e.g. ``wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors``). The token is
matched case-insensitively, with ``_`` or ``-`` (or nothing) between the two words, in
the file name only (not in folder names).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .stack import AUTO, BOTH, HIGH, LOW, LoraRow

_TOKEN = re.compile(r"(high|low)([_-]?noise)", re.IGNORECASE)
ROLES = (HIGH, LOW)
_OTHER = {HIGH: LOW, LOW: HIGH}


def noise_role(file: str) -> str | None:
    """``"high"``, ``"low"`` or ``None`` from the file name; ambiguous names raise."""
    name = posixpath.basename(file.replace("\\", "/"))
    roles = {m.group(1).lower() for m in _TOKEN.finditer(name)}
    if len(roles) > 1:
        raise ValueError(f"{file!r} names both high_noise and low_noise: cannot tell which WAN 2.2 expert it is for; "
                         "rename it or set the row's target")
    return roles.pop() if roles else None


def _match_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word.capitalize()
    return word


def sibling_name(file: str) -> str | None:
    """The other half's expected name (``high_noise`` <-> ``low_noise``, case kept)."""
    head, _, name = file.replace("\\", "/").rpartition("/")
    if noise_role(file) is None:
        return None
    swapped = _TOKEN.sub(lambda m: _match_case(_OTHER[m.group(1).lower()], m.group(1)) + m.group(2), name)
    return f"{head}/{swapped}" if head else swapped


def find_sibling(file: str, available: Collection[str]) -> str | None:
    """The other half of ``file``'s pair among ``available`` names, or ``None``.

    Exact name first, then a case-insensitive match (one only) so ``_HIGH_NOISE`` finds
    ``_low_noise``."""
    want = sibling_name(file)
    if want is None:
        return None
    norm = {a.replace("\\", "/"): a for a in available}
    if want in norm:
        return norm[want]
    folded = [a for n, a in norm.items() if n.lower() == want.lower()]
    return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True)
class Assignment:
    """One file applied to one expert (``role`` is ``"high"`` or ``"low"``)."""

    row: int  # 1-based row of the stack this comes from
    file: str
    role: str
    strength: float
    note: str = ""


def plan_wan22(stack: Sequence[LoraRow], available: Collection[str]) -> tuple[tuple[Assignment, ...], list[str]]:
    """Decide which file goes on which expert, in stack order.

    * A file whose name marks it as one half of a pair goes to its own expert only, and
      brings its sibling (found in ``available``) to the other expert at the same
      strength, unless the sibling is itself a row of the stack (that row decides).
    * Its target must be ``auto`` or agree with its name.
    * Any other file goes where its target says (``both``: both experts); ``auto`` is an
      error, not a guess.

    Returns the assignments and human-readable notes (a half with no sibling found).
    Raises ``ValueError`` listing every row that cannot be placed."""
    names_in_stack = {r.file.replace("\\", "/").lower() for r in stack}
    out: list[Assignment] = []
    notes: list[str] = []
    errors: list[str] = []
    for i, row in enumerate(stack, 1):
        try:
            role = noise_role(row.file)
        except ValueError as exc:
            errors.append(f"row {i}: {exc}")
            continue
        if role is None:
            if row.target == AUTO:
                errors.append(f"row {i}: {row.file!r} has no high_noise/low_noise in its name and no sibling, so "
                              "target 'auto' cannot choose an expert; set target to high, low or both")
                continue
            roles = ROLES if row.target == BOTH else (row.target,)
            out += [Assignment(i, row.file, r, row.strength_model) for r in roles]
            continue
        if row.target not in (AUTO, role):
            errors.append(f"row {i}: {row.file!r} is the {role}-noise half of a pair by its name, but its target is "
                          f"{row.target!r}; use 'auto' or '{role}'")
            continue
        out.append(Assignment(i, row.file, role, row.strength_model))
        sibling = find_sibling(row.file, available)
        if sibling is None:
            notes.append(f"row {i}: no {_OTHER[role]}_noise sibling of {row.file!r} in the loras folder; "
                         f"applied to the {role}-noise model only")
        elif sibling.replace("\\", "/").lower() not in names_in_stack:
            out.append(Assignment(i, sibling, _OTHER[role], row.strength_model, note=f"sibling of row {i}"))
    if errors:
        raise ValueError("cannot place these LoRAs on the WAN 2.2 experts:\n  " + "\n  ".join(errors))
    return tuple(out), notes
