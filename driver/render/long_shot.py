"""Binding the jobs of a long shot (``driver.story.long_shot``): its segments
(``workflows/wan22_segment.api.json``), its join (``workflows/wan22_join.api.json``) and the
split of its keyframe strip (``workflows/strip_split.api.json``).

The join template holds two ``AP_LoadChunk`` loaders (``Segment 1``, ``Segment 2``) and one
``AP_FLFChainConcat`` (``Chain Concat``); for ``N`` segments the driver adds ``Segment 3``
... ``Segment N`` and a concat for each (``Chain Concat 2`` ...: copies of ``Chain Concat``,
so an artist's colour matching and smoothing settings hold at every join), each reading the
previous concat's frames and seam report (``previous_report``), and moves every reader of
``Chain Concat`` (the gates, the report) to the last one: the seam gate judges every join.
A one-segment chain loses the concat and the seam gate."""

from __future__ import annotations

import copy

from driver.story.plan import STRIP_SPLIT, WAN_FLF, WAN_JOIN, WAN_SEGMENT, WAN_SPLIT_FLF, Job, segment_seed

from .workflow import Binder, add_node, consumers, find

SEGMENT_TITLES = {"Save Segment": 0, "Save End Frame": 1}  # save title -> index in the job's outputs
LORA_VIDEO = (WAN_FLF, WAN_SPLIT_FLF, WAN_SEGMENT)  # templates whose character LoRAs are the video kind


def output_titles(job: Job, fixed: dict[str, dict[str, str | None]]) -> dict[str, str]:
    """Save-node title -> output role: per job for a segment or strip split, else the template's
    ``fixed`` titles (a None role is the job's first output)."""
    if job.template == STRIP_SPLIT:
        return {f"Save Panel {k + 1}": role for role, k in job.params["panel_roles"].items()}
    if job.template == WAN_SEGMENT:
        return {t: job.outputs[k] for t, k in SEGMENT_TITLES.items() if k < len(job.outputs)}
    return {t: role or job.outputs[0] for t, role in fixed[job.template].items()}


def bind_strip_split(c, b: Binder, job: Job, seed: int, inputs: dict[str, str], prefix: str) -> None:
    """One ``Panel k`` / ``Save Panel k`` pair (copies of ``Panel`` / ``Save Panel``) per panel the shot uses."""
    p = job.params
    b.set("Strip", image=inputs["strip"])
    b.set("Strip Split", panels=p["panels"], target_width=p["width"], target_height=p["height"])
    b.require("Panel", "Save Panel")
    if b.problems:
        return
    prompt = b.prompt
    (pick,), (save,) = find(prompt, "Panel"), find(prompt, "Save Panel")
    for role, k in p["panel_roles"].items():
        new = add_node(prompt, prompt[pick]["class_type"], {**copy.deepcopy(prompt[pick]["inputs"]),
                                                            "batch_index": k, "length": 1}, f"Panel {k + 1}")
        add_node(prompt, prompt[save]["class_type"], {**copy.deepcopy(prompt[save]["inputs"]), "images": [new, 0],
                                                      "filename_prefix": f"{prefix}_{role}"}, f"Save Panel {k + 1}")
    del prompt[save], prompt[pick]


def _keyframes(b: Binder, job: Job, inputs: dict[str, str]) -> None:
    """``First Frame`` always; ``Last Frame`` when the job has one, else removed (the
    keyframe gate then checks the start only; the identity references repeat the first)."""
    p = job.params
    b.set("First Frame", image=inputs[p["first_role"]])
    if p["last_role"]:
        b.set("Last Frame", image=inputs[p["last_role"]])
        return
    for first in find(b.prompt, "First Frame")[:1]:
        for nid in find(b.prompt, "Identity References"):
            b.prompt[nid]["inputs"]["image2"] = [first, 0]
    b.bypass("Last Frame")


def bind_segment(c, b: Binder, job: Job, seed: int, inputs: dict[str, str], prefix: str) -> None:
    p = job.params
    triggers = c._wan_models(b, job)
    c._conditioning(b, c._prompt_text(p["motion"], triggers), p["negative"])
    _keyframes(b, job, inputs)
    b.set("First-Last Frame", width=p["width"], height=p["height"], length=p["length"], batch_size=1)
    c._wan_samplers(b, segment_seed(seed, p["segment"]), "Sampler High", "Sampler Low")
    b.set("Save Segment", fps=float(p["wan_fps"]), filename_prefix=f"{prefix}_{job.outputs[0]}")
    if len(job.outputs) > 1:
        b.set("End Frame", batch_index=p["length"] - 1, length=1)
        b.set("Save End Frame", filename_prefix=f"{prefix}_{job.outputs[1]}")
    else:
        b.bypass("Save End Frame")
        b.bypass("End Frame")


def _chain(b: Binder, count: int) -> None:
    """Grow the template's two-segment chain to ``count`` segments."""
    prompt = b.prompt
    (loader,), (concat,) = find(prompt, "Segment 2"), find(prompt, "Chain Concat")
    readers = [(cid, name, slot) for cid, name, slot in consumers(prompt, concat)]
    last = concat
    for k in range(3, count + 1):
        seg = add_node(prompt, prompt[loader]["class_type"], copy.deepcopy(prompt[loader]["inputs"]), f"Segment {k}")
        inputs = {**copy.deepcopy(prompt[concat]["inputs"]), "segment_a": [last, 0], "segment_b": [seg, 0],
                  "previous_report": [last, 1]}
        last = add_node(prompt, prompt[concat]["class_type"], inputs, f"Chain Concat {k - 1}")
    for cid, name, slot in readers:
        prompt[cid]["inputs"][name] = [last, slot]


def bind_join(c, b: Binder, job: Job, seed: int, inputs: dict[str, str], prefix: str) -> None:
    p = job.params
    count = len(p["lengths"])
    if count == 1:
        b.bypass("Seam Gate")
        b.bypass("Chain Concat", {0: "segment_a"})
        b.bypass("Segment 2")
    else:
        _chain(b, count)
    for k in range(count):
        b.set(f"Segment {k + 1}", chunk=inputs[f"seg{k + 1}"])
    _keyframes(b, job, inputs)
    c._finish_video(b, job, prefix)


BINDERS = {WAN_SEGMENT: bind_segment, WAN_JOIN: bind_join, STRIP_SPLIT: bind_strip_split}
