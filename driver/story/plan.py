"""Storyboard + config -> jobs (pure: no I/O, no server).

A job is one ComfyUI prompt. Each shot gives zero or more keyframe jobs and one video
job, in dependency order::

    triptych_split_flf  [kf-strip: T2I strip] -> kf-split: AP_TriptychSplit -> video: WAN split FLF
    standard_flf        [kf-first: T2I] [kf-last: T2I]                      -> video: WAN FLF
    held_frame_push     [kf-hero: T2I]                                      -> video: AP_HeldFramePush
    held_frame_static   [kf-hero: T2I]                                      -> video: still held
    keyframed_flf       [kf-keyK: T2I]... -> seg1..segN: WAN FLF segment    -> video: join (driver.story.long_shot)
    continuation_flf    [kf-first] [kf-last] -> seg1 -> seg2 -> ... segN    -> video: join

Bracketed jobs are skipped when the storyboard gives the keyframe image. Frame counts:
every final clip has ``round(duration_s x fps)`` frames. WAN renders at its own fps
(16) a ``4n+1`` length long enough that the retimed clip covers the shot, then the tail
is trimmed to fit; held shots render at the delivery fps directly.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.segments import floor_wan_length, is_wan_length, plan_split_flf
from driver.config import Config
from driver.errors import ConfigError

from .long_shot import long_shot_jobs
from .storyboard import LONG_APPROACHES, Shot, Storyboard

KEYFRAMES, VIDEO = "keyframes", "video"
STAGES = (KEYFRAMES, VIDEO)

# template keys (config ``templates`` maps them to files)
T2I_SDXL, T2I_UNET = "t2i_sdxl", "t2i_unet"
TRIPTYCH_SPLIT = "triptych_split"
WAN_FLF, WAN_SPLIT_FLF = "wan22_flf", "wan22_split_flf"
HELD_PUSH, HELD_STATIC = "held_push", "held_static"
WAN_SEGMENT, WAN_JOIN, STRIP_SPLIT = "wan22_segment", "wan22_join", "strip_split"
TEMPLATE_KEYS = (T2I_SDXL, T2I_UNET, TRIPTYCH_SPLIT, WAN_FLF, WAN_SPLIT_FLF, HELD_PUSH, HELD_STATIC, WAN_SEGMENT,
                 WAN_JOIN, STRIP_SPLIT)


@dataclass(frozen=True)
class Input:
    """Where a job input comes from: a storyboard file or another job's output role."""

    role: str
    file: str | None = None  # absolute path
    job: str | None = None   # producing job id

    def describe(self) -> str:
        return self.file if self.file else f"{self.job}:{self.role}"


@dataclass(frozen=True)
class Job:
    id: str                   # "S03T02-kf-first", "S03T02-video"
    shot: str
    stage: str                # keyframes | video
    template: str             # one of TEMPLATE_KEYS
    params: dict              # values the compiler binds by node title (prompts, sizes, frame counts)
    inputs: tuple[Input, ...] = ()
    outputs: tuple[str, ...] = ()  # roles this job produces (asset suffixes)
    frames: int | None = None      # delivered frames (video jobs)
    wan_lengths: tuple[int, ...] = ()
    estimate_s: float = 0.0
    gated: bool = False            # carries AP_QualityReport: retaken on failure
    seed: int = 0                  # attempt 1's seed (later attempts derive theirs from it)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.job for i in self.inputs if i.job))


@dataclass
class Plan:
    storyboard: Storyboard
    config: Config
    jobs: list[Job] = field(default_factory=list)

    def for_shot(self, sid: str) -> list[Job]:
        return [j for j in self.jobs if j.shot == sid]

    def job(self, job_id: str) -> Job:
        return next(j for j in self.jobs if j.id == job_id)

    @property
    def estimate_s(self) -> float:
        return sum(j.estimate_s for j in self.jobs)

    def summary(self) -> dict:
        return {
            "project": self.storyboard.project, "episode": self.storyboard.episode,
            "gpu": self.config["gpu"], "estimate_gpu_s": round(self.estimate_s, 1),
            "jobs": [{"id": j.id, "shot": j.shot, "stage": j.stage, "template": j.template,
                      "depends_on": list(j.depends_on), "inputs": [i.describe() for i in j.inputs],
                      "outputs": list(j.outputs), "frames": j.frames, "wan_lengths": list(j.wan_lengths),
                      "estimate_gpu_s": round(j.estimate_s, 1)} for j in self.jobs],
        }


def derive_seed(seed: int, attempt: int) -> int:
    """Attempt 1 uses the shot's seed; later attempts a seed derived from (seed, attempt)."""
    if attempt <= 1:
        return seed
    digest = hashlib.sha256(f"anime_pipeline:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def segment_seed(seed: int, segment: int) -> int:
    """Seed of segment ``segment`` (0-based) of a split-FLF attempt: segment 0 uses the
    attempt's seed; later segments a seed derived from it, distinct from any attempt's."""
    if segment == 0:
        return seed
    digest = hashlib.sha256(f"anime_pipeline:{seed}:segment:{segment}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def retimed_count(n: int, fps_in: float, fps_out: float) -> int:
    """Frames ``AP_AnimeRetime`` makes of ``n``: ``floor((n - 1) * fps_out / fps_in) + 1``."""
    return math.floor((n - 1) * _frac(fps_out) / _frac(fps_in)) + 1


def wan_length_for(frames: int, wan_fps: float, fps: float) -> int:
    """The shortest ``4n+1`` WAN length whose retime to ``fps`` has at least ``frames`` frames."""
    need = math.ceil((frames - 1) * _frac(wan_fps) / _frac(fps)) + 1
    length = 4 * math.ceil((need - 1) / 4) + 1
    assert is_wan_length(length) and retimed_count(length, wan_fps, fps) >= frames
    return length


def _frac(x: float) -> Fraction:
    return Fraction(str(x)).limit_denominator(100000)


class _Planner:
    def __init__(self, sb: Storyboard, config: Config, keyframe_rounds: dict[str, int]):
        self.sb, self.config = sb, config
        self.profile = config.profile(sb.model_profile)
        self.video, self.t2i = self.profile["video"], self.profile["t2i"]
        self.rounds = keyframe_rounds
        self.problems: list[str] = []

    # -- estimates ------------------------------------------------------------------
    def _wan_estimate(self, lengths) -> float:
        g = self.config.gpu_figures
        f, w, h, steps = g["wan_ref"]
        d = self.sb.delivery
        return sum(g["wan_ref_s"] * (n / f) * (d.width * d.height / (w * h)) * (self.video["steps"] / steps)
                   for n in lengths)

    def _t2i_estimate(self, width: int, height: int) -> float:
        per = self.config.gpu_figures["t2i_s_per_mp_step"].get(self.t2i["family"], 0.0)
        return per * self.t2i["steps"] * width * height / 1e6

    # -- keyframes ----------------------------------------------------------------------
    def _t2i_job(self, shot: Shot, role: str, prompt: str, width: int, height: int) -> Job:
        template = T2I_SDXL if self.t2i["family"] == "sdxl" else T2I_UNET
        rnd = self.rounds.get(shot.id, 1)
        params = {"prompt": prompt, "negative": shot.prompts["negative"],
                  "width": width, "height": height, "characters": shot.characters, "keyframe_round": rnd}
        return Job(f"{shot.id}-kf-{role}", shot.id, KEYFRAMES, template, params, outputs=(role,),
                   estimate_s=self._t2i_estimate(width, height), seed=derive_seed(shot.seed, rnd))

    def keyframe_inputs(self, shot: Shot, roles: tuple[str, ...]) -> tuple[list[Job], list[Input]]:
        """Keyframe jobs of ``shot`` and the inputs its video job gets for ``roles``."""
        d, jobs, inputs = self.sb.delivery, [], []
        given = {r: str(p) for r, p in shot.keyframes.items()}
        missing = [r for r in roles if r not in given]
        if missing and ("strip" in given or shot.approach == "triptych_split_flf"):
            if "strip" in given:
                strip = Input("strip", file=given["strip"])
            else:
                t = self.t2i
                strip_job = self._t2i_job(shot, "strip", shot.prompts["triptych"], t["strip_width"], t["strip_height"])
                jobs.append(strip_job)
                strip = Input("strip", job=strip_job.id)
            split = Job(f"{shot.id}-kf-split", shot.id, KEYFRAMES, TRIPTYCH_SPLIT,
                        {"width": d.keyframe_width, "height": d.keyframe_height}, (strip,),
                        outputs=("first", "hero", "last"), seed=shot.seed)
            jobs.append(split)
            return jobs, [Input(r, file=given[r]) if r in given else Input(r, job=split.id) for r in roles]
        for role in roles:
            if role in given:
                inputs.append(Input(role, file=given[role]))
            else:
                job = self._t2i_job(shot, role, shot.prompts[role], d.keyframe_width, d.keyframe_height)
                jobs.append(job)
                inputs.append(Input(role, job=job.id))
        return jobs, inputs

    # -- video ----------------------------------------------------------------------------
    def shot_jobs(self, shot: Shot) -> list[Job]:
        d, v = self.sb.delivery, self.video
        frames = shot.frames(d.fps)
        base = {"frames": frames, "fps": d.fps, "width": d.width, "height": d.height,
                "characters": shot.characters}
        if shot.approach in ("held_frame_push", "held_frame_static"):
            kf_jobs, inputs = self.keyframe_inputs(shot, ("hero",))
            if shot.approach == "held_frame_push":
                p = shot.push
                assert p is not None  # the storyboard gives every held_frame_push shot its push
                base.update(duration_s=shot.duration_s, zoom_start=p.zoom_start, zoom_end=p.zoom_end,
                            center_start=list(p.center_start), center_end=list(p.center_end), easing=p.easing)
            template = HELD_PUSH if shot.approach == "held_frame_push" else HELD_STATIC
            return kf_jobs + [Job(f"{shot.id}-video", shot.id, VIDEO, template, base, tuple(inputs), ("video",),
                                  frames=frames, seed=shot.seed)]
        wan_fps = v["fps"]
        total = wan_length_for(frames, wan_fps, d.fps)
        if shot.approach in LONG_APPROACHES:
            base.update(negative=shot.prompts["negative"], wan_fps=wan_fps)
            return long_shot_jobs(self, shot, base, total)
        base.update(motion=shot.prompts["motion"], negative=shot.prompts["negative"], wan_fps=wan_fps)
        if shot.approach == "standard_flf":
            seg_max = floor_wan_length(v["max_segment"])
            if total > seg_max:
                self.problems.append(
                    f"{shot.path}.duration_s: {shot.duration_s} s needs {total} WAN frames at {wan_fps:g} fps, "
                    f"more than one FLF segment holds ({seg_max}, {(seg_max - 1) / wan_fps:.2f} s); shorten the shot "
                    "or use triptych_split_flf, keyframed_flf or continuation_flf")
                return []
            kf_jobs, inputs = self.keyframe_inputs(shot, ("first", "last"))
            lengths: tuple[int, ...] = (total,)
            base["length"] = total
            template = WAN_FLF
        else:
            hero = shot.hero_frame if shot.hero_frame is not None else 0.5
            kwargs = ({"hero_position": float(hero)} if isinstance(hero, float) or hero < 1
                      else {"hero_frame": round(hero * _frac(wan_fps) / _frac(d.fps))})
            try:
                split = plan_split_flf(total_frames=total, fps=wan_fps, max_segment=v["max_segment"], **kwargs)
            except InputError as exc:
                self.problems.append(f"{shot.path}.duration_s: split FLF of {total} WAN frames: {exc}")
                return []
            kf_jobs, inputs = self.keyframe_inputs(shot, ("first", "hero", "last"))
            lengths = (split.length_a, split.length_b)
            base.update(length_a=split.length_a, length_b=split.length_b, hero_index=split.hero_index)
            template = WAN_SPLIT_FLF
        base["retimed_frames"] = retimed_count(sum(lengths) - len(lengths) + 1, wan_fps, d.fps)
        return kf_jobs + [Job(f"{shot.id}-video", shot.id, VIDEO, template, base, tuple(inputs), ("video",),
                              frames=frames, wan_lengths=lengths, estimate_s=self._wan_estimate(lengths), gated=True,
                              seed=shot.seed)]


def shot_planner(sb: Storyboard, config: Config) -> Callable[[Shot, int], list[Job]]:
    """``jobs(shot, keyframe_round)``: one shot's jobs (what the scheduler plans again
    when a retake raises the shot's keyframe round)."""
    def jobs(shot: Shot, keyframe_round: int) -> list[Job]:
        return make_plan(sb, config, only=[shot.id], keyframe_rounds={shot.id: keyframe_round}).jobs
    return jobs


def make_plan(sb: Storyboard, config: Config, *, only: list[str] | None = None,
              keyframe_rounds: dict[str, int] | None = None) -> Plan:
    """Every job of the storyboard (or of the shots in ``only``), in storyboard order."""
    planner = _Planner(sb, config, keyframe_rounds or {})
    wanted = None
    if only:
        known = {s.id for s in sb.shots}
        unknown = [s for s in only if s not in known]
        if unknown:
            raise ConfigError(f"--only: no shot {', '.join(unknown)} in {sb.path.name} "
                              f"(shots: {', '.join(sorted(known))})")
        wanted = set(only)
    plan = Plan(sb, config)
    for shot in sb.shots:
        if wanted is None or shot.id in wanted:
            plan.jobs.extend(planner.shot_jobs(shot))
    if planner.problems:
        listing = "\n".join(f"  - {p}" for p in planner.problems)
        raise ConfigError(f"storyboard {sb.path.name} cannot be planned:\n{listing}", problems=planner.problems)
    return plan
