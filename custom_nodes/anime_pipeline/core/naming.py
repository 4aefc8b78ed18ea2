"""Asset naming shared by the nodes and the driver (pure: no torch, numpy or ComfyUI).

An asset is named ``{PRJ}_EP{NNN}_S{NN}_T{NN}_{CHAR}[_{suffix}][_a{N}].{ext}``::

    LEV_EP001_S03_T02_JINX_hero.png        keyframe of scene 3, take 2
    LEV_EP001_S03_T02_JINX-VI_video.mp4    two characters, joined with "-"
    LEV_EP001_S01_T01_NOCHAR_video_a2.mp4  no character; retake attempt 2

``_`` separates the fields, so every field is restricted:

* project code and character names: upper-case letters, digits and ``-``
  (``[A-Z0-9-]+``), starting and ending with a letter or digit (so joined
  character lists stay readable), at most 32 characters;
* suffix: lower-case letters, digits and ``-``, and not of the form ``a<digits>``
  (that is the attempt field);
* extension: lower-case letters and digits.

Nothing that fails these rules can become part of a file name, so a storyboard
can never smuggle a path separator, ``..`` or ``_`` into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NOCHAR = "NOCHAR"
MAX_CODE_LEN = 32

_CODE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?")
_CODE_CHAR = re.compile(r"[A-Z0-9-]")
_SUFFIX = re.compile(r"[a-z0-9-]+")
_ATTEMPT = re.compile(r"a[0-9]+")
_EXT = re.compile(r"[a-z0-9]+")
_SHOT_ID = re.compile(r"S(\d{2,})T(\d{2,})")
_ASSET = re.compile(
    r"(?P<project>[A-Z0-9-]+)_EP(?P<episode>\d{3,})_S(?P<scene>\d{2,})_T(?P<take>\d{2,})_(?P<characters>[A-Z0-9-]+)"
    r"(?:_(?P<suffix>(?!a[0-9]+[._])[a-z0-9-]+))?(?:_a(?P<attempt>[0-9]+))?\.(?P<ext>[a-z0-9]+)"
)


class NamingError(ValueError):
    """A value cannot be used in an asset name. ``field`` names where it came from
    (e.g. ``project`` or ``shots[2].characters_in_shot[0]``)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


def check_code(value: object, field: str = "code") -> str:
    """Return ``value`` if it is a valid project code / character name, else raise NamingError."""
    if not isinstance(value, str):
        raise NamingError(field, f"expected a string of A-Z, 0-9 and '-', got {type(value).__name__}")
    if not _CODE.fullmatch(value):
        bad = "".join(sorted({c for c in value if not _CODE_CHAR.fullmatch(c)}))
        why = f"bad characters {bad!r}" if bad else ("empty" if not value else "starts or ends with '-'")
        raise NamingError(field, f"{value!r} must be upper-case letters A-Z, digits and '-', "
                                 f"starting and ending with a letter or digit ({why})")
    if len(value) > MAX_CODE_LEN:
        raise NamingError(field, f"{value!r} is longer than {MAX_CODE_LEN} characters")
    return value


def check_suffix(value: str, field: str = "suffix") -> str:
    if not isinstance(value, str) or not _SUFFIX.fullmatch(value) or _ATTEMPT.fullmatch(value):
        raise NamingError(field, f"{value!r} must be lower-case letters, digits and '-' (and not like 'a2')")
    return value


def _number(value: int, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise NamingError(field, f"expected an integer in {lo}..{hi}, got {value!r}")
    return value


def shot_id(scene: int, take: int) -> str:
    """``S03T02`` for scene 3, take 2."""
    return f"S{_number(scene, 'scene', 1, 99):02d}T{_number(take, 'take', 1, 99):02d}"


def parse_shot_id(value: str) -> tuple[int, int]:
    """``"S03T02"`` -> ``(3, 2)``; raises NamingError on anything else."""
    m = _SHOT_ID.fullmatch(value or "")
    if not m:
        raise NamingError("shot id", f"{value!r} is not a shot id like 'S03T02'")
    return int(m.group(1)), int(m.group(2))


def characters_field(characters: Iterable[str], field: str = "characters") -> str:
    """Character names joined with ``-`` in the given order; ``NOCHAR`` when empty."""
    names = [check_code(c, f"{field}[{i}]") for i, c in enumerate(characters)]
    return "-".join(names) if names else NOCHAR


@dataclass(frozen=True)
class AssetName:
    """The parts of an asset file name."""

    project: str
    episode: int
    scene: int
    take: int
    characters: str  # already joined ("JINX-VI" or "NOCHAR")
    ext: str
    suffix: str | None = None
    attempt: int | None = None

    @property
    def shot_id(self) -> str:
        return shot_id(self.scene, self.take)

    def __str__(self) -> str:
        check_code(self.project, "project")
        if not (isinstance(self.characters, str) and _CODE.fullmatch(self.characters)):
            raise NamingError("characters", f"{self.characters!r} is not a joined character field like 'JINX-VI'")
        _number(self.episode, "episode", 1, 999)
        parts = [self.project, f"EP{self.episode:03d}", f"S{_number(self.scene, 'scene', 1, 99):02d}",
                 f"T{_number(self.take, 'take', 1, 99):02d}", self.characters]
        if self.suffix is not None:
            parts.append(check_suffix(self.suffix))
        if self.attempt is not None:
            parts.append(f"a{_number(self.attempt, 'attempt', 1, 999)}")
        if not isinstance(self.ext, str) or not _EXT.fullmatch(self.ext):
            raise NamingError("ext", f"{self.ext!r} must be lower-case letters and digits")
        return "_".join(parts) + "." + self.ext


def asset_name(project: str, episode: int, scene: int, take: int, characters: Iterable[str], *,
               ext: str, suffix: str | None = None, attempt: int | None = None) -> str:
    """The file name of one asset, e.g. ``LEV_EP001_S03_T02_JINX_hero.png``."""
    return str(AssetName(project, episode, scene, take, characters_field(characters), ext, suffix, attempt))


def parse_asset_name(name: str) -> AssetName:
    """Inverse of :func:`asset_name`; raises NamingError for anything else."""
    m = _ASSET.fullmatch(name)
    if not m:
        raise NamingError("asset name", f"{name!r} does not match PRJ_EPNNN_SNN_TNN_CHAR[_suffix][_aN].ext")
    attempt = m.group("attempt")
    return AssetName(m.group("project"), int(m.group("episode")), int(m.group("scene")), int(m.group("take")),
                     m.group("characters"), m.group("ext"), m.group("suffix"), int(attempt) if attempt else None)


def episode_cut_name(project: str, episode: int, ext: str = "mp4") -> str:
    """``LEV_EP001_cut.mp4``."""
    return f"{check_code(project, 'project')}_EP{_number(episode, 'episode', 1, 999):03d}_cut.{ext}"
