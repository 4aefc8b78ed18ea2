"""Seam gate: real clips split mid-shot pass; a 3-4/255 luma step or a splice of two
clips at the seam fails; the seam comes from an index or AP_FLFChainConcat's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devkit import calibration as cal
from anime_pipeline.core.quality import seam as S
from anime_pipeline.nodes.quality import SeamGate
from tests.unit.quality_clips import OTHER, POSITIVES, clip, image

D = S.SeamThresholds()
MID = 16


def args(**kw):
    return {"seam_index": 0, "warp_error_k": D.warp_error_k, "warp_error_floor": D.warp_error_floor,
            "max_luma_jump": D.max_luma_jump, "max_chroma_jump": D.max_chroma_jump} | kw


@pytest.mark.parametrize("name", POSITIVES)
def test_a_real_clip_split_mid_shot_passes(name):
    result = S.seam_gate(image(clip(name)), [MID])
    assert result.passed, result.reasons
    m = result.metrics["seams"][0]
    assert m["seam_index"] == MID and not m["is_cut"] and m["neighbour_intervals"] == 8


@pytest.mark.parametrize("name", POSITIVES)
@pytest.mark.parametrize("delta", [3.0, -3.0, 3.5, 4.0])
def test_a_luma_step_of_3_to_4_levels_fails(name, delta):
    stepped = cal.luma_step(clip(name), MID, delta)
    result = S.seam_gate(image(stepped), [MID])
    assert not result.passed and result.failed_frames == [MID]
    m = result.metrics["seams"][0]
    assert abs(m["luma_jump"]) > D.max_luma_jump and np.sign(m["luma_jump"]) == np.sign(delta)


def test_a_splice_of_two_clips_is_a_cut():
    a, b = clip(POSITIVES[0]), clip(OTHER)
    spliced = np.concatenate([a[:MID], cal.fit(b[0], *a.shape[1:3])[None], a[MID + 1:]])
    result = S.seam_gate(image(spliced), [MID])
    assert not result.passed
    m = result.metrics["seams"][0]
    assert m["is_cut"] and any("cut" in r for r in result.reasons)


def test_parse_seam_info_accepts_the_concat_json_shapes():
    one = {"seam_index": 17, "dropped_frame": 0, "luma_jump": 0.004, "ssim_across_seam": 0.91,
           "hero_similarity": 0.95}
    assert S.parse_seam_info(json.dumps(one)) == [one]
    assert [r["seam_index"] for r in S.parse_seam_info(json.dumps([one, one | {"seam_index": 40}]))] == [17, 40]
    assert [r["seam_index"] for r in S.parse_seam_info('{"seam_index": [5, 9]}')] == [5, 9]
    for bad, msg in [("nope", "not valid JSON"), ('{"x": 1}', "seam_index"), ('{"seam_index": "3"}', "integer"),
                     ("[]", "lists no seam")]:
        with pytest.raises(ValueError, match=msg):
            S.parse_seam_info(bad)


def test_node_takes_the_seam_from_the_concat_report_and_records_its_numbers():
    c = clip(POSITIVES[0])
    report = json.dumps({"seam_index": MID, "dropped_frame": 0, "luma_jump": 0.001, "ssim_across_seam": 0.9,
                         "hero_similarity": 0.97})
    frames = image(c)
    out, result, text = SeamGate().check(frames, **args(), seam_report=report)
    assert out is frames and result.passed
    assert result.metrics["seams"][0]["concat"]["hero_similarity"] == 0.97
    assert json.loads(text)["metrics"]["seams"][0]["seam_index"] == MID


def test_node_errors_name_the_input():
    frames = image(clip(POSITIVES[0], frames=10))
    node = SeamGate()
    with pytest.raises(ValueError, match=r"AP_SeamGate\.seam_index: no seam given"):
        node.check(frames, **args())
    with pytest.raises(ValueError, match=r"seam_index: seam\(s\) \[10\] outside 1\.\.9 for 10 frames"):
        node.check(frames, **args(seam_index=10))
    with pytest.raises(ValueError, match=r"seam_index: 4 is not a seam of seam_report \(\[5\]\)"):
        node.check(frames, **args(seam_index=4), seam_report='{"seam_index": 5}')
    with pytest.raises(ValueError, match=r"AP_SeamGate\.seam_report: not valid JSON"):
        node.check(frames, **args(), seam_report="{oops")


def test_seam_near_the_clip_start_uses_the_neighbours_it_has():
    result = S.seam_gate(image(clip(POSITIVES[0], frames=12)), [1])
    assert result.metrics["seams"][0]["neighbour_intervals"] == 4
