"""Jobs of a long shot: a chain of N first-last-frame segments, one job each, plus a join.

    keyframed_flf     [kf-keyK: T2I]... [kf-split: AP_StripSplit] -> seg1 (key1 -> key2), seg2 (key2 -> key3),
                      ... -> video: join
    continuation_flf  [kf-first: T2I] [kf-last: T2I] -> seg1 (first ->) -> seg2 (seg1's last frame ->)
                      ... -> segN (segN-1's last frame -> [last]) -> video: join

Each segment job renders its WAN frames (``4n+1``, at most the profile's ``max_segment``)
into a lossless chunk (role ``segK``; continuation segments also save their last frame,
role ``segK-end``, the next segment's first frame). The join job (``wan22_join``, id
``<shot>-video``) loads the chunks, chains ``AP_FLFChainConcat`` pairwise (each shared
frame kept once), runs the quality gates (a seam gate judging every join) and retimes and
trims to the shot's frames; it is the gated job, and its failures retake segments
(``driver.render.chain``). Plans are ``anime_pipeline.core.segment_chain``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.segment_chain import SegmentChainPlan, plan_continuation, plan_keyframed

from .storyboard import Shot, key_role

if TYPE_CHECKING:  # the planner imports this module
    from .plan import Input, Job, _Planner

KEYFRAMED, CONTINUATION = "keyframed_flf", "continuation_flf"


def segment_role(k: int) -> str:
    """Output role of segment ``k`` (0-based): its chunk."""
    return f"seg{k + 1}"


def end_role(k: int) -> str:
    """Output role of segment ``k``'s last frame (continuation: the next segment's first)."""
    return f"seg{k + 1}-end"


def chain_plan(planner: _Planner, shot: Shot, total: int) -> SegmentChainPlan | None:
    """The shot's segment plan, or None with the problem recorded against its JSON path."""
    wan_fps, seg_max = planner.video["fps"], planner.video["max_segment"]
    try:
        if shot.approach == KEYFRAMED:
            names = [f"keyframes[{k}] ({t:g} s)" for k, t in enumerate(shot.key_times)]
            return plan_keyframed(total, [t * wan_fps for t in shot.key_times], seg_max, names=names, fps=wan_fps)
        return plan_continuation(total, seg_max)
    except InputError as exc:
        problem = str(exc).partition(": ")[2]
        where = f"{shot.path}.keyframes" if shot.approach == KEYFRAMED else f"{shot.path}.duration_s"
        planner.problems.append(f"{where}: {problem}")
        return None


def _prompts(planner: _Planner, shot: Shot, count: int) -> list[str] | None:
    given = shot.segment_prompts or ((shot.prompts["motion"],) if "motion" in shot.prompts else ())
    if len(given) == 1:
        return list(given) * count
    if len(given) != count:
        planner.problems.append(f"{shot.path}.segment_prompts: {len(given)} prompts for the {count} segments this "
                                "shot needs; give one per segment or one for all")
        return None
    return list(given)


def keyed_inputs(planner: _Planner, shot: Shot, count: int) -> tuple[list[Job], list[Input]]:
    """Keyframe jobs and inputs of a keyframed shot: its images, T2I jobs for its prompts, and
    one strip split (``AP_StripSplit``) for the keyframes that take their panel of the strip."""
    from .plan import KEYFRAMES, STRIP_SPLIT, Input, Job

    d, jobs, inputs = planner.sb.delivery, [], []
    from_strip = [key_role(k) for k in range(count) if key_role(k) not in shot.keyframes
                  and key_role(k) not in shot.prompts]
    split = Job(f"{shot.id}-kf-split", shot.id, KEYFRAMES, STRIP_SPLIT,
                {"width": d.keyframe_width, "height": d.keyframe_height, "panels": count,
                 "panel_roles": {role: int(role[3:]) - 1 for role in from_strip}},
                (Input("strip", file=str(shot.keyframes.get("strip"))),), outputs=tuple(from_strip), seed=shot.seed)
    for k in range(count):
        role = key_role(k)
        if role in shot.keyframes:
            inputs.append(Input(role, file=str(shot.keyframes[role])))
        elif role in shot.prompts:
            jobs.append(planner._t2i_job(shot, role, shot.prompts[role], d.keyframe_width, d.keyframe_height))
            inputs.append(Input(role, job=jobs[-1].id))
        else:
            inputs.append(Input(role, job=split.id))
    return jobs + ([split] if from_strip else []), inputs


def long_shot_jobs(planner: _Planner, shot: Shot, base: dict, total: int) -> list[Job]:
    """Keyframe, segment and join jobs of a keyframed or continuation shot."""
    from .plan import VIDEO, WAN_JOIN, WAN_SEGMENT, Input, Job, retimed_count

    plan = chain_plan(planner, shot, total)
    prompts = _prompts(planner, shot, len(plan.lengths)) if plan else None
    if plan is None or prompts is None:
        return []
    n = len(plan.lengths)
    firsts: list[Input | None]
    lasts: list[Input | None]
    if shot.approach == KEYFRAMED:
        kf_jobs, kf = keyed_inputs(planner, shot, n + 1)
        firsts, lasts = list(kf[:-1]), list(kf[1:])
    else:  # the first segment starts on the first keyframe, the last ends on the last one (if any)
        roles = ("first", "last") if ("last" in shot.keyframes or "last" in shot.prompts) else ("first",)
        kf_jobs, kf = planner.keyframe_inputs(shot, roles)
        firsts = [kf[0], *([None] * (n - 1))]
        lasts = [*([None] * (n - 1)), kf[1] if len(kf) > 1 else None]
    refs: tuple[Input, Input | None] = (kf[0], kf[-1] if len(kf) > 1 else None)
    jobs: list[Job] = []
    d = planner.sb.delivery
    for k, length in enumerate(plan.lengths):
        first = firsts[k] or Input(end_role(k - 1), job=jobs[-1].id)
        last = lasts[k]
        outputs = (segment_role(k),) + ((end_role(k),) if shot.approach == CONTINUATION and k < n - 1 else ())
        params = {"segment": k, "length": length, "width": d.width, "height": d.height, "wan_fps": base["wan_fps"],
                  "motion": prompts[k], "negative": base["negative"], "characters": shot.characters,
                  "first_role": first.role, "last_role": last.role if last else None}
        inputs = (first,) + ((last,) if last else ())
        jobs.append(Job(f"{shot.id}-seg{k + 1}", shot.id, VIDEO, WAN_SEGMENT, params, inputs, outputs,
                        wan_lengths=(length,), estimate_s=planner._wan_estimate((length,)), seed=shot.seed))
    join = dict(base, lengths=list(plan.lengths), seams=list(plan.seams), chain=shot.approach,
                first_role=refs[0].role, last_role=refs[1].role if refs[1] else None,
                retimed_frames=retimed_count(plan.total, base["wan_fps"], d.fps))
    inputs = tuple(Input(segment_role(k), job=j.id) for k, j in enumerate(jobs)) + tuple(r for r in refs if r)
    jobs.append(Job(f"{shot.id}-video", shot.id, VIDEO, WAN_JOIN, join, inputs, ("video",), frames=base["frames"],
                    wan_lengths=plan.lengths, gated=True, seed=shot.seed))
    return kf_jobs + jobs
