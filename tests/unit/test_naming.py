"""Asset naming (anime_pipeline.core.naming): the format, the field rules, the round trip."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anime_pipeline.core.naming import (NOCHAR, AssetName, NamingError, asset_name, characters_field, check_code,
                                        episode_cut_name, parse_asset_name, parse_shot_id, shot_id)


def test_examples_from_the_issue():
    assert asset_name("LEV", 1, 3, 2, ["JINX"], suffix="hero", ext="png") == "LEV_EP001_S03_T02_JINX_hero.png"
    assert asset_name("LEV", 1, 3, 2, ["JINX", "VI"], suffix="video", ext="mp4") == \
        "LEV_EP001_S03_T02_JINX-VI_video.mp4"
    assert asset_name("LEV", 12, 1, 1, [], ext="mp4") == "LEV_EP012_S01_T01_NOCHAR.mp4"
    assert asset_name("LEV", 1, 3, 2, ["JINX"], suffix="video", ext="mp4", attempt=2) == \
        "LEV_EP001_S03_T02_JINX_video_a2.mp4"
    assert episode_cut_name("LEV", 1) == "LEV_EP001_cut.mp4"
    assert shot_id(3, 2) == "S03T02"
    assert parse_shot_id("S03T02") == (3, 2)


@pytest.mark.parametrize("bad", ["lev", "LE_V", "LEV/..", "..", "A B", "", "ÄBC", "LEV.", "X" * 33, "-", "-LEV",
                                 "LEV-"])
def test_codes_outside_the_alphabet_are_rejected_naming_the_field(bad):
    with pytest.raises(NamingError, match=r"^shots\[2\]\.characters_in_shot\[0\]: "):
        check_code(bad, "shots[2].characters_in_shot[0]")


def test_character_field_names_the_offending_index():
    with pytest.raises(NamingError) as err:
        characters_field(["JINX", "vi"], "shots[0].characters_in_shot")
    assert err.value.field == "shots[0].characters_in_shot[1]"
    assert characters_field([]) == NOCHAR


@pytest.mark.parametrize("kwargs", [
    {"suffix": "Hero"}, {"suffix": "he_ro"}, {"suffix": "a2"}, {"ext": "MP4"}, {"ext": "m.p4"},
    {"attempt": 0}, {"scene": 0}, {"scene": 100}, {"take": True},
])
def test_bad_parts_are_rejected(kwargs):
    args = dict(project="LEV", episode=1, scene=1, take=1, characters=["JINX"], ext="png")
    args.update(kwargs)
    with pytest.raises(NamingError):
        asset_name(args.pop("project"), args.pop("episode"), args.pop("scene"), args.pop("take"),
                   args.pop("characters"), **args)


def test_parse_rejects_foreign_names():
    for name in ["LEV_EP001_S03_T02.png", "lev_EP001_S03_T02_JINX.png", "LEV_EP001_S03_T02_JINX_hero.png/../x"]:
        with pytest.raises(NamingError):
            parse_asset_name(name)


codes = st.from_regex(r"[A-Z0-9]([A-Z0-9-]{0,6}[A-Z0-9])?", fullmatch=True)
suffixes = st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True).filter(lambda s: not (s[0] == "a" and s[1:].isdigit()))


@given(project=codes, episode=st.integers(1, 999), scene=st.integers(1, 99), take=st.integers(1, 99),
       chars=st.lists(codes, max_size=3), suffix=st.none() | suffixes, attempt=st.none() | st.integers(1, 99),
       ext=st.sampled_from(["png", "mp4", "json"]))
def test_round_trip(project, episode, scene, take, chars, suffix, attempt, ext):
    name = asset_name(project, episode, scene, take, chars, ext=ext, suffix=suffix, attempt=attempt)
    assert "/" not in name and ".." not in name
    parsed = parse_asset_name(name)
    assert parsed == AssetName(project, episode, scene, take, characters_field(chars), ext, suffix, attempt)
    assert str(parsed) == name
