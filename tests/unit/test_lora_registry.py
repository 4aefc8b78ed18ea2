"""Character registry: schema validation with JSON paths, resolution, strength rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.lora import registry as reg
from anime_pipeline.core.lora.stack import LoraRow
from anime_pipeline.nodes import lora as lora_nodes

DOCS = reg.SCHEMA_PATH.parents[1] / "docs" / "lora_registry.md"

REGISTRY = {
    "version": 1,
    "characters": {
        "jinx": {"t2i": {"file": "chars/jinx.safetensors", "strength": 1.0, "trigger": "JNXCHAR"},
                 "video": {"high": "chars/jinx_high_noise.safetensors", "low": "chars/jinx_low_noise.safetensors"}},
        "vi": {"t2i": {"file": "chars/vi.safetensors", "strength": 0.8, "strength_clip": 0.4, "trigger": "VICHAR"},
               "video": {"high": "chars/vi_H.safetensors", "low": "chars/vi_L.safetensors", "strength": 0.9,
                         "trigger": "VIVID"}},
        "ekko": {"t2i": {"file": "chars/ekko.safetensors", "trigger": "EKKOCHAR"}},
    },
}


def load(doc=REGISTRY) -> reg.Registry:
    return reg.load_registry(json.dumps(doc), [])


def test_shipped_schema_is_a_valid_json_schema():
    Draft202012Validator.check_schema(reg.load_schema())


def test_documented_example_is_valid():
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, "docs/lora_registry.md has no ```json example"
    reg.Registry.from_dict(json.loads(blocks[0]))


def test_two_characters_at_full_strength_become_half_each():
    rows, triggers = reg.resolve(load(), "jinx, ekko", "t2i")
    assert rows == (LoraRow("chars/jinx.safetensors", 0.5, 0.5), LoraRow("chars/ekko.safetensors", 0.5, 0.5))
    assert triggers == ["JNXCHAR", "EKKOCHAR"]


@pytest.mark.parametrize("strengths, expected", [
    ([1.0], [1.0]), ([1.0, 1.0], [0.5, 0.5]), ([1.0, 0.8], [1 / 1.8, 0.8 / 1.8]),
    ([0.6, 0.6, 0.6], [0.2, 0.2, 0.2]), ([0.9, 0.05], [0.9 * 0.9 / 0.95, 0.05 * 0.9 / 0.95]),
])
def test_scale_to_strongest(strengths, expected):
    got = reg.scale_strengths(strengths, "scale_to_strongest")
    assert got == pytest.approx(expected)
    assert sum(got) == pytest.approx(max(strengths))


def test_as_registered_keeps_strengths_and_unknown_rule_raises():
    assert reg.scale_strengths([1.0, 0.8], "as_registered") == [1.0, 0.8]
    with pytest.raises(ValueError, match="strength rule 'loudest'"):
        reg.scale_strengths([1.0], "loudest")


def test_clip_strength_scales_with_the_model_strength():
    rows, _ = reg.resolve(load(), "jinx,vi", "t2i")
    vi = rows[1]
    assert vi.strength_model == pytest.approx(0.8 / 1.8) and vi.strength_clip == pytest.approx(0.4 / 1.8)
    rows, _ = reg.resolve(load(), "vi", "t2i", "as_registered")
    assert (rows[0].strength_model, rows[0].strength_clip) == (0.8, 0.4)


def test_video_gives_high_then_low_rows_and_trigger_fallback():
    rows, triggers = reg.resolve(load(), "jinx, vi", "video")
    s_j, s_v = 1.0 / 1.9, 0.9 / 1.9
    assert [(r.file, r.target) for r in rows] == [
        ("chars/jinx_high_noise.safetensors", "high"), ("chars/jinx_low_noise.safetensors", "low"),
        ("chars/vi_H.safetensors", "high"), ("chars/vi_L.safetensors", "low")]
    assert [r.strength_model for r in rows] == pytest.approx([s_j, s_j, s_v, s_v])
    assert triggers == ["JNXCHAR", "VIVID"]  # jinx: t2i trigger; vi: its own video trigger


def test_unknown_character_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown character\(s\) \['caitlyn'\].*knows: \['ekko', 'jinx', 'vi'\]"):
        reg.resolve(load(), "jinx, caitlyn", "t2i")


def test_missing_kind_duplicates_and_empty_names():
    with pytest.raises(ValueError, match=r"\['ekko'\] have no 'video' LoRA"):
        reg.resolve(load(), "ekko", "video")
    with pytest.raises(ValueError, match=r"more than once: \['vi'\]"):
        reg.resolve(load(), "vi, jinx, vi", "t2i")
    with pytest.raises(ValueError, match="no character names"):
        reg.resolve(load(), " , ", "t2i")


def errors_of(doc) -> dict[str, str]:
    with pytest.raises(reg.RegistryError) as err:
        reg.Registry.from_dict(doc)
    return dict(err.value.errors)


def test_schema_errors_name_the_json_path():
    doc = json.loads(json.dumps(REGISTRY))
    doc["characters"]["jinx"]["t2i"]["strength"] = -1
    del doc["characters"]["vi"]["video"]["low"]
    doc["characters"]["ekko"]["t2i"]["file"] = "../outside.safetensors"
    doc["characters"]["ekko"]["t2i"]["trigegr"] = "typo"
    errors = errors_of(doc)
    assert set(errors) == {"$.characters.jinx.t2i.strength", "$.characters.vi.video", "$.characters.ekko.t2i"} | \
        {"$.characters.ekko.t2i.file"}
    assert "-1 is less than or equal to the minimum of 0" in errors["$.characters.jinx.t2i.strength"]
    assert "'low' is a required property" in errors["$.characters.vi.video"]
    assert "'trigegr' was unexpected" in errors["$.characters.ekko.t2i"]


def test_schema_rejects_bad_top_level_and_names():
    with pytest.raises(reg.RegistryError) as err:
        reg.Registry.from_dict({"chars": {}})
    assert ("$", "'characters' is a required property") in err.value.errors
    assert ("$", "Additional properties are not allowed ('chars' was unexpected)") in err.value.errors
    assert "'jinx, vi' is not allowed: Character name -> its LoRAs. Names are what shots list (comma-separated), " \
        "so they cannot contain commas." in " ".join(errors_of({"characters": {"jinx, vi": {"t2i": {
            "file": "a.safetensors", "trigger": "X"}}}}).values())  # what the pattern guards, not the raw regex
    assert "$.version" in errors_of({"version": 2, "characters": REGISTRY["characters"]})


def test_error_message_lists_paths():
    with pytest.raises(reg.RegistryError, match=r"invalid LoRA registry \(inline JSON\):\n  \$\.characters\.jinx\.t2i"):
        reg.Registry.from_dict({"characters": {"jinx": {"t2i": {"file": 3, "trigger": "X"}}}})


def test_invalid_json_text():
    with pytest.raises(reg.RegistryError, match=r"\$: not valid JSON: .* line 1 column"):
        reg.load_registry('{"characters": ', [])


def test_registry_files_in_the_loras_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "sets").mkdir(parents=True)
    a.mkdir()
    (b / "lora_registry.json").write_text(json.dumps(REGISTRY))
    (b / "sets" / "s2.json").write_text(json.dumps({"characters": {"x": REGISTRY["characters"]["ekko"]}}))
    assert set(reg.load_registry("", [a, b]).characters) == {"jinx", "vi", "ekko"}
    assert set(reg.load_registry("sets/s2.json", [a, b]).characters) == {"x"}
    with pytest.raises(ValueError, match=r"LoRA registry 'missing.json' not found; searched: .*a, .*b"):
        reg.load_registry("missing.json", [a, b])
    with pytest.raises(ValueError, match="neither inline JSON"):
        reg.load_registry("jinx", [a, b])
    (a / "broken.json").write_text('{"characters": {"q": {"t2i": {}}}}')
    with pytest.raises(reg.RegistryError, match=r"broken.json\):\n  \$\.characters\.q\.t2i: 'file' is a required"):
        reg.load_registry("broken.json", [a, b])


def test_registry_node_appends_to_upstream_and_names_inputs(monkeypatch):
    monkeypatch.setattr(lora_nodes, "_lora_dirs", lambda: [])
    node = lora_nodes.AP_LoraStackFromRegistry()
    upstream = (LoraRow("style.safetensors", 0.6, 0.6),)
    stack, triggers = node.build("jinx, vi", "t2i", "scale_to_strongest", json.dumps(REGISTRY), lora_stack=upstream)
    assert [r.file for r in stack] == ["style.safetensors", "chars/jinx.safetensors", "chars/vi.safetensors"]
    assert triggers == "JNXCHAR, VICHAR" and upstream == (LoraRow("style.safetensors", 0.6, 0.6),)
    with pytest.raises(InputError, match=r"AP_LoraStackFromRegistry\.characters: unknown character"):
        node.build("nobody", "t2i", "scale_to_strongest", json.dumps(REGISTRY))
    with pytest.raises(InputError, match=r"AP_LoraStackFromRegistry\.registry: invalid LoRA registry"):
        node.build("jinx", "t2i", "scale_to_strongest", '{"characters": {}}')


def test_is_changed_follows_the_registry_file(tmp_path, monkeypatch):
    monkeypatch.setattr(lora_nodes, "_lora_dirs", lambda: [tmp_path])
    is_changed = lora_nodes.AP_LoraStackFromRegistry.IS_CHANGED
    assert is_changed(registry='{"characters": {}}') == ""
    assert is_changed(registry="") != is_changed(registry="")  # missing file: NaN, always re-run
    path = tmp_path / "lora_registry.json"
    path.write_text(json.dumps(REGISTRY))
    first = is_changed(registry="")
    assert first == is_changed(registry="lora_registry.json")
    path.write_text(json.dumps(REGISTRY) + "\n")
    assert is_changed(registry="") != first


def test_registry_and_pairing_import_without_torch():
    """The driver validates registries with these modules; they must not pull in torch."""
    code = ("import sys, anime_pipeline.core.lora.registry, anime_pipeline.core.lora.pairing; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
