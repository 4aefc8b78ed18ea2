"""Storyboard v3: load, validate (JSON Schema in ``storyboards/schema.json``, then the
rules that span fields), and expose typed, immutable shots.

Every problem names its JSON path (``shots[3].duration_s``) and all are reported at
once. Keyframe paths are resolved relative to the storyboard's folder and must stay
inside it; nothing the storyboard says becomes a path unchecked."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from anime_pipeline.core.naming import shot_id
from driver.errors import ConfigError
from driver.images import image_problem
from driver.validation import parse_json, raise_if_problems, schema_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "storyboards" / "schema.json"

APPROACHES = ("triptych_split_flf", "standard_flf", "held_frame_push", "held_frame_static")
WAN_APPROACHES = ("triptych_split_flf", "standard_flf")
KEYFRAME_ROLES = ("strip", "first", "hero", "last")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def frames_for(duration_s: float, fps: float) -> int:
    """Frames a shot of ``duration_s`` occupies at ``fps``: round half up, at least 1."""
    return max(1, math.floor(duration_s * fps + 0.5))


@dataclass(frozen=True)
class Delivery:
    width: int
    height: int
    fps: float
    keyframe_width: int
    keyframe_height: int


@dataclass(frozen=True)
class Push:
    """The camera move of a ``held_frame_push`` shot (image fractions, zoom factors)."""

    zoom_start: float = 1.0
    zoom_end: float = 1.15
    center_start: tuple[float, float] = (0.5, 0.5)
    center_end: tuple[float, float] = (0.5, 0.5)
    easing: str = "ease_in_out"


@dataclass(frozen=True)
class Shot:
    index: int  # position in the storyboard's shots[]
    scene: int
    take: int
    approach: str
    duration_s: float
    seed: int
    prompts: dict[str, str]  # triptych / hero / first / last / motion / negative
    characters: tuple[str, ...]
    keyframes: dict[str, Path] = field(default_factory=dict)  # role -> absolute path inside the storyboard folder
    push: Push | None = None
    hero_frame: float | int | None = None
    notes: str = ""

    @property
    def id(self) -> str:
        return shot_id(self.scene, self.take)

    @property
    def path(self) -> str:
        """JSON path of this shot, for error messages."""
        return f"shots[{self.index}]"

    @property
    def uses_wan(self) -> bool:
        return self.approach in WAN_APPROACHES

    def frames(self, fps: float) -> int:
        return frames_for(self.duration_s, fps)


@dataclass(frozen=True)
class Storyboard:
    path: Path
    sha256: str
    project: str
    episode: int
    title: str
    delivery: Delivery
    model_profile: str
    negative_prompt: str
    characters: dict[str, str]  # code -> registry name
    shots: tuple[Shot, ...]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def shot(self, sid: str) -> Shot:
        for s in self.shots:
            if s.id == sid:
                return s
        raise ConfigError(f"no shot {sid!r} in {self.path.name} (shots: {', '.join(s.id for s in self.shots)})")


def _inside(folder: Path, rel: str) -> Path | None:
    """``folder/rel`` resolved (symlinks too) if it stays inside ``folder``, else None."""
    if Path(rel).is_absolute() or "\\" in rel:
        return None
    resolved = (folder / rel).resolve()
    return resolved if resolved.is_relative_to(folder.resolve()) else None


def _image_problems(where: str, path: Path) -> list[str]:
    """The keyframe decoded and size-checked (a text file named .png, a truncated PNG)."""
    try:
        problem = image_problem(path.read_bytes())
    except OSError as exc:
        problem = f"cannot read it: {exc.strerror or exc}"
    return [f"{where}: {path.name}: {problem}"] if problem else []


def _cross_field_problems(doc: dict, folder: Path) -> list[str]:
    problems = []
    declared = set(doc.get("characters") or {})
    seen: dict[str, int] = {}
    fps = doc["delivery"]["fps"]
    for i, shot in enumerate(doc["shots"]):
        where = f"shots[{i}]"
        sid = shot_id(shot["scene"], shot["take"])
        if sid in seen:
            problems.append(f"{where}: shot id {sid} (scene {shot['scene']}, take {shot['take']}) "
                            f"is already used by shots[{seen[sid]}]")
        seen.setdefault(sid, i)
        for j, code in enumerate(shot.get("characters_in_shot", [])):
            if code not in declared:
                known = ", ".join(sorted(declared)) or "none declared"
                problems.append(f"{where}.characters_in_shot[{j}]: {code!r} is not declared in characters "
                                f"(known: {known})")
        for role, rel in (shot.get("keyframes") or {}).items():
            path = _inside(folder, rel)
            if path is None:
                problems.append(f"{where}.keyframes.{role}: {rel!r} leaves the storyboard's folder; "
                                "give a path relative to the storyboard, inside its folder")
            elif not path.is_file():
                problems.append(f"{where}.keyframes.{role}: file not found: {rel} (looked in {folder})")
            else:
                problems += _image_problems(f"{where}.keyframes.{role}", path)
        if math.floor(shot["duration_s"] * fps + 0.5) < 1:
            problems.append(f"{where}.duration_s: {shot['duration_s']} s at {fps} fps is less than one frame "
                            f"(at least {0.5 / fps:.3g} s)")
        hero = shot.get("hero_frame")
        if isinstance(hero, int) and not isinstance(hero, bool) and hero >= 1:
            n = frames_for(shot["duration_s"], fps)
            if hero >= n - 1:
                problems.append(f"{where}.hero_frame: frame {hero} is not inside the shot's {n} frames "
                                f"(0..{n - 1}, first and last excluded)")
        if shot.get("hero_frame") is not None and shot["generation_approach"] != "triptych_split_flf":
            problems.append(f"{where}.hero_frame: only triptych_split_flf shots have a hero position")
    return problems


def parse_storyboard(doc, path: Path, raw_bytes: bytes | None = None) -> Storyboard:
    """Validate a storyboard document; raise ConfigError listing every problem."""
    path = Path(path).resolve()
    raise_if_problems(schema_problems(doc, load_schema()), f"storyboard {path.name}")
    raise_if_problems(_cross_field_problems(doc, path.parent), f"storyboard {path.name}")
    d = doc["delivery"]
    delivery = Delivery(d["width"], d["height"], float(d["fps"]), d.get("keyframe_width", d["width"]),
                        d.get("keyframe_height", d["height"]))
    default_negative = doc.get("negative_prompt", "")
    shots = []
    for i, s in enumerate(doc["shots"]):
        prompts = {k[:-7]: s[k] for k in ("triptych_prompt", "hero_prompt", "first_prompt", "last_prompt",
                                          "motion_prompt") if k in s}
        prompts["negative"] = s.get("negative_prompt", default_negative)
        push = None
        if s["generation_approach"] == "held_frame_push":
            p = s.get("push") or {}
            base = Push()
            push = Push(p.get("zoom_start", base.zoom_start), p.get("zoom_end", base.zoom_end),
                        tuple(p.get("center_start", base.center_start)), tuple(p.get("center_end", base.center_end)),
                        p.get("easing", base.easing))
        keyframes = {role: _inside(path.parent, rel) or path.parent / rel  # inside: checked above
                     for role, rel in (s.get("keyframes") or {}).items()}
        shots.append(Shot(i, s["scene"], s["take"], s["generation_approach"], float(s["duration_s"]), s["seed"],
                          prompts, tuple(s.get("characters_in_shot", [])), keyframes, push, s.get("hero_frame"),
                          s.get("notes", "")))
    raw = raw_bytes if raw_bytes is not None else json.dumps(doc, sort_keys=True).encode()
    characters = {code: (c or {}).get("registry", code) for code, c in (doc.get("characters") or {}).items()}
    return Storyboard(path, hashlib.sha256(raw).hexdigest(), doc["project"], doc["episode"], doc.get("title", ""),
                      delivery, doc["model_profile"], default_negative, characters, tuple(shots))


def load_storyboard(path: str | Path) -> Storyboard:
    """Read and validate a storyboard file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read storyboard {path}: {exc.strerror or exc}") from None
    return parse_storyboard(parse_json(raw, f"storyboard {path.name}"), path, raw)
