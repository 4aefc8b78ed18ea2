"""Values that travel between nodes on the pack's custom socket types.

``AP_MOTION_LABELS`` carries a :class:`MotionLabels`, ``AP_GATE_RESULT`` a
:class:`GateResult`. Both are plain data so the pure modules and the driver can
use them without ComfyUI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CUT, HOLD, MOTION = "cut", "hold", "motion"
LABELS = (CUT, HOLD, MOTION)
LETTERS = {label[0]: label for label in LABELS}


@dataclass(frozen=True)
class MotionLabels:
    """One label per interval between consecutive frames (``n_frames - 1`` of them).

    ``labels[i]`` describes the interval from frame ``i`` to frame ``i + 1``.
    ``scores`` maps a score name to one value per interval; ``thresholds`` records
    the thresholds that produced the labels."""

    labels: tuple[str, ...]
    n_frames: int
    scores: dict[str, tuple[float, ...]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.labels) != max(self.n_frames - 1, 0):
            raise ValueError(f"MotionLabels: {len(self.labels)} labels for {self.n_frames} frames "
                             f"(expected {max(self.n_frames - 1, 0)})")
        bad = sorted(set(self.labels) - set(LABELS))
        if bad:
            raise ValueError(f"MotionLabels: unknown label(s) {bad}; expected {list(LABELS)}")

    @classmethod
    def from_letters(cls, letters: str, n_frames: int) -> MotionLabels:
        """Labels given as one letter per interval (``c`` cut, ``h`` hold, ``m`` motion;
        whitespace ignored), e.g. decided once for a whole video and given to each chunk."""
        text = "".join(letters.split())
        bad = sorted(set(text) - set(LETTERS))
        if bad:
            raise ValueError(f"unknown label letter(s) {bad}; expected one of {sorted(LETTERS)} per interval")
        if len(text) != max(n_frames - 1, 0):
            raise ValueError(f"{len(text)} label letters for {n_frames} frames (expected {max(n_frames - 1, 0)})")
        return cls(labels=tuple(LETTERS[c] for c in text), n_frames=n_frames, thresholds={"given": 1.0})

    def letters(self) -> str:
        """The labels as one letter per interval (see :meth:`from_letters`)."""
        return "".join(label[0] for label in self.labels)

    def indices(self, label: str) -> list[int]:
        return [i for i, lab in enumerate(self.labels) if lab == label]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GateResult:
    """Outcome of one quality gate, as carried on ``AP_GATE_RESULT``.

    ``reasons`` says why it failed (one line per failed check, with the measured value
    and its threshold; empty when it passed); ``notes`` carries information that is not
    a failure (skipped intervals, a resized reference...)."""

    name: str
    passed: bool
    metrics: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    failed_frames: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
