"""Storyboard v3: the shipped examples are valid; every kind of bad input is reported
with its JSON path, all at once; keyframe paths cannot leave the storyboard folder."""

import copy
import json
from pathlib import Path

import pytest

from driver.errors import ConfigError
from driver.story.storyboard import REPO_ROOT, frames_for, load_storyboard, parse_storyboard
from tests.unit.driver_fakes import png, shot, write_storyboard

EXAMPLES = [REPO_ROOT / "storyboards" / "storyboard_ep_001.json", REPO_ROOT / "storyboards" / "demo" / "demo.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_storyboards_are_valid(path):
    sb = load_storyboard(path)
    assert sb.shots and len({s.id for s in sb.shots}) == len(sb.shots)


def test_episode_example_uses_every_approach():
    sb = load_storyboard(EXAMPLES[0])
    assert {s.approach for s in sb.shots} == {"triptych_split_flf", "standard_flf", "held_frame_push",
                                              "held_frame_static", "keyframed_flf", "continuation_flf"}
    assert any(s.approach == "keyframed_flf" and s.duration_s > 10 for s in sb.shots)


def test_demo_needs_no_diffusion_model():
    sb = load_storyboard(EXAMPLES[1])
    assert all(s.approach.startswith("held_frame") for s in sb.shots)
    assert all(s.keyframes and not any(k in s.prompts for k in ("hero", "first", "last", "triptych")) for s in sb.shots)


def _problems(doc, folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_storyboard(doc, folder / "sb.json")
    return err.value.problems


def _doc(tmp_path, shots=None, **top):
    return json.loads(write_storyboard(tmp_path, shots or [shot(1, 1, "held_frame_static")], **top).read_text())


def test_every_problem_is_reported_with_its_json_path(tmp_path):
    doc = _doc(tmp_path, [shot(1, 1, "held_frame_static"), shot(1, 2, "standard_flf"), shot(2, 1, "held_frame_push")])
    doc["version"] = 2
    doc["project"] = "le_v"
    doc["shots"][1]["duration_s"] = -2
    doc["shots"][2]["durration_s"] = 3
    doc["shots"][2]["generation_approach"] = "morph"
    del doc["shots"][0]["seed"]
    problems = _problems(doc, tmp_path)
    text = "\n".join(problems)
    assert "version: expected 3, got 2" in text
    assert any(p.startswith("project: 'le_v' is not allowed") for p in problems)
    assert "shots[1].duration_s: expected a number > 0 and <= 60, got -2" in text
    assert "shots[2]: unknown field 'durration_s' (did you mean 'duration_s'?)" in text
    assert any(p.startswith("shots[2].generation_approach: expected one of") for p in problems)
    assert "shots[0].seed: required field is missing" in text


def test_approach_specific_requirements(tmp_path):
    flf = shot(1, 1, "standard_flf")
    del flf["last_prompt"]
    problems = _problems(_doc(tmp_path, [flf]), tmp_path)
    assert any(p.startswith("shots[0]: expected") and "last_prompt" in p for p in problems)
    static = shot(1, 1, "held_frame_static", push={"zoom_end": 1.2})
    assert any(p.startswith("shots[0]") and "not allowed" in p for p in _problems(_doc(tmp_path, [static]), tmp_path))


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd.png", "sub/../../x.png"])
def test_keyframes_must_stay_inside_the_storyboard_folder(tmp_path, bad):
    doc = _doc(tmp_path, [shot(1, 1, "held_frame_push", keyframes={"hero": bad})])
    problems = _problems(doc, tmp_path)
    assert any(p.startswith("shots[0].keyframes.hero:") and ("leaves" in p or "not allowed" in p) for p in problems)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = png(tmp_path / "outside" / "x.png")
    (tmp_path / "sb").mkdir()
    (tmp_path / "sb" / "link.png").symlink_to(outside)
    doc = _doc(tmp_path / "sb", [shot(1, 1, "held_frame_push", keyframes={"hero": "link.png"})])
    assert any("leaves the storyboard's folder" in p for p in _problems(doc, tmp_path / "sb"))


def test_missing_keyframe_duplicate_ids_and_undeclared_characters(tmp_path):
    doc = _doc(tmp_path, [shot(1, 1, "held_frame_push", keyframes={"hero": "nope.png"}),
                          shot(1, 1, "held_frame_static", characters_in_shot=["BOB"])])
    problems = _problems(doc, tmp_path)
    assert "shots[0].keyframes.hero: file not found: nope.png" in "\n".join(problems)
    assert any(p.startswith("shots[1]: shot id S01T01") for p in problems)
    assert any(p.startswith("shots[1].characters_in_shot[0]: 'BOB' is not declared") for p in problems)


def test_character_codes_follow_the_naming_rule(tmp_path):
    doc = _doc(tmp_path, characters={"ok-1": {}, "A_B": {}})
    problems = _problems(doc, tmp_path)
    assert any(p.startswith("characters:") for p in problems)


def test_parsed_shot_fields(tmp_path):
    hero = png(tmp_path / "kf" / "hero.png")
    path = write_storyboard(tmp_path, [shot(3, 2, "held_frame_push", keyframes={"hero": "kf/hero.png"},
                                            push={"zoom_end": 1.3}, characters_in_shot=["AKI"], duration_s=1.5)],
                            negative_prompt="ugly")
    s = load_storyboard(path).shots[0]
    assert s.id == "S03T02" and s.keyframes["hero"] == hero.resolve()
    assert s.push.zoom_end == 1.3 and s.push.zoom_start == 1.0
    assert s.prompts["negative"] == "ugly" and s.characters == ("AKI",)
    assert s.frames(24) == 36


def test_frame_rounding_is_half_up():
    assert frames_for(0.5625, 16) == 9 and frames_for(1 / 48, 24) == 1 and frames_for(2.0, 23.976) == 48


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read storyboard"):
        load_storyboard(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_storyboard(tmp_path / "bad.json")


def test_hero_frame_rules(tmp_path):
    doc = _doc(tmp_path, [shot(1, 1, "triptych_split_flf", hero_frame=24), shot(1, 2, "held_frame_static",
                                                                                   hero_frame=0.5)])
    problems = _problems(doc, tmp_path)
    assert any(p.startswith("shots[0].hero_frame: frame 24 is not inside") for p in problems)
    assert any(p.startswith("shots[1].hero_frame: only triptych_split_flf") for p in problems)
    ok = copy.deepcopy(doc)
    ok["shots"] = [shot(1, 1, "triptych_split_flf", hero_frame=10, duration_s=2.0)]
    assert parse_storyboard(ok, tmp_path / "sb.json").shots[0].hero_frame == 10
