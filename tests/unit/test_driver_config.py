"""Project config: defaults mirror the official WAN 2.2 14B FLF template, a YAML file
overrides only what it states, and bad values are reported with their path."""

import pytest

from driver.config import DEFAULTS, build_config, load_config
from driver.errors import ConfigError
from driver.story.storyboard import REPO_ROOT


def test_defaults_mirror_the_wan22_flf_template():
    video = load_config(None).profile("wan22_sdxl")["video"]
    assert (video["steps"], video["split_step"], video["cfg"], video["shift"]) == (4, 2, 1.0, 5.0)
    assert (video["sampler"], video["scheduler"], video["fps"]) == ("euler", "simple", 16.0)
    assert video["speed_loras"]["high"] == "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
    assert video["speed_loras"]["low"] == "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
    assert DEFAULTS["gpu_table"]["rtx4090"]["wan_ref_s"] == 108.0


def test_a_profile_states_only_its_differences(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_profiles:\n  mine:\n    video: {steps: 20, split_step: 10, speed_loras: null}\n"
                    "lora_registry: reg/loras.json\n")
    cfg = load_config(path)
    mine = cfg.profile("mine")
    assert mine["video"]["steps"] == 20 and mine["video"]["speed_loras"] is None
    assert mine["video"]["unet_high"].startswith("wan2.2_i2v_high_noise")
    assert mine["t2i"]["family"] == "sdxl"
    assert cfg.path(cfg["lora_registry"]) == (tmp_path / "reg" / "loras.json").resolve()
    assert "wan22_sdxl" in cfg["model_profiles"]


def test_problems_are_listed_with_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("servers: [localhost:8188]\nretakes: {max_retakes: -1}\nmodel_profiles:\n"
                    "  bad:\n    video: {steps: 4, split_step: 4}\n    t2i: {family: unet}\nbogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = "\n".join(err.value.problems)
    assert "servers[0]:" in text and "retakes.max_retakes:" in text
    assert "model_profiles.bad.t2i.unet: required field is missing" in text
    assert "$: unknown field 'bogus'" in text


def test_split_step_must_be_below_steps():
    with pytest.raises(ConfigError, match="split_step: 4 must be below steps"):
        build_config({"model_profiles": {"x": {"video": {"split_step": 4}}}}, REPO_ROOT)


def test_unknown_profile_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not a model profile"):
        load_config(None).profile("nope")
    (tmp_path / "c.yaml").write_text("servers: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "c.yaml")


def test_shipped_configs_load():
    for name in ("project.example.yaml", "test_tiny_wan.yaml"):
        load_config(REPO_ROOT / "configs" / name)
    tiny = load_config(REPO_ROOT / "configs" / "test_tiny_wan.yaml").profile("tiny_wan")
    assert tiny["stub_conditioning"]["node"] == "AP_TestZeroConditioning"
    example = load_config(REPO_ROOT / "configs" / "project.example.yaml")
    assert example.profile("wan22_sdxl")["stub_conditioning"] is None


def test_overrides_revalidate():
    cfg = load_config(None).with_overrides(servers=["http://h:1"], retakes=None)
    assert cfg["servers"] == ["http://h:1"]
    with pytest.raises(ConfigError):
        load_config(None).with_overrides(servers=["ftp://x"])
