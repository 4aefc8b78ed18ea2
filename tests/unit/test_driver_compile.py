"""Binding by node title: values land on the titled nodes whatever their ids, problems
name the template and title, graph edits (stub conditioning, LoRA bypass) rewire
correctly, and compilation is deterministic."""

import json
import random
import re

import pytest

from driver.render.compile import Compiler
from driver.config import build_config, load_config
from driver.story.plan import derive_seed, make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard
from driver.render.workflow import Binder, TemplateError, find, is_link, load_template, replace_with_one
from tests.unit.driver_fakes import shot, write_storyboard

WORKFLOWS = REPO_ROOT / "workflows"


def _renumbered(prompt: dict, seed: int = 0) -> dict:
    """The same graph with shuffled node ids, as a canvas re-export may give."""
    ids = list(prompt)
    new = [str(100 + i) for i in range(len(ids))]
    random.Random(seed).shuffle(new)
    mapping = dict(zip(ids, new, strict=True))
    out = {}
    for nid, node in prompt.items():
        node = json.loads(json.dumps(node))
        for k, v in node["inputs"].items():
            if is_link(v):
                node["inputs"][k] = [mapping[v[0]], v[1]]
        out[mapping[nid]] = node
    return out


def _by_title(prompt: dict) -> dict:
    return {(n["_meta"]["title"], n["class_type"], json.dumps({k: v for k, v in n["inputs"].items() if not is_link(v)},
                                                              sort_keys=True)) for n in prompt.values()}


def test_binding_sets_titled_nodes_including_several_with_one_title():
    b = Binder(load_template(WORKFLOWS / "wan22_flf.api.json"), "wan22_flf")
    b.set("Model Sampling", shift=8.0)
    b.set("First-Last Frame", length=33)
    prompt = b.result()
    assert [prompt[n]["inputs"]["shift"] for n in find(prompt, "Model Sampling")] == [8.0, 8.0]
    assert prompt[find(prompt, "First-Last Frame")[0]]["inputs"]["length"] == 33


def test_all_problems_of_a_template_are_listed():
    b = Binder(load_template(WORKFLOWS / "held_static.api.json"), "held_static.api.json")
    b.set("Nope", x=1)
    b.set("Hold", amount_typo=3)
    b.set("Create Video", images=1)  # a linked input
    with pytest.raises(TemplateError) as err:
        b.result()
    text = str(err.value)
    assert "held_static.api.json" in text and "no node titled 'Nope'" in text
    assert "'Hold' (RepeatImageBatch, id 3) has no input 'amount_typo'" in text
    assert "input 'images' is linked" in text


def test_ui_format_and_garbage_are_rejected(tmp_path):
    (tmp_path / "ui.json").write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(TemplateError, match="UI-format"):
        load_template(tmp_path / "ui.json")
    (tmp_path / "x.json").write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(TemplateError, match="not an API-format"):
        load_template(tmp_path / "x.json")


def _compiler(tmp_path, shots, config=None, templates_dir=None):
    sb = load_storyboard(write_storyboard(tmp_path, shots))
    cfg = config or load_config(None)
    if templates_dir:
        cfg = build_config({"templates_dir": str(templates_dir)}, tmp_path)
    return make_plan(sb, cfg), Compiler(sb, cfg, "TST-EP007-abc")


def test_an_edited_renumbered_template_still_binds(tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    for path in WORKFLOWS.glob("*.api.json"):
        prompt = _renumbered(load_template(path), seed=len(path.name))
        prompt["999"] = {"class_type": "Note", "inputs": {}, "_meta": {"title": "artist note"}}
        (tdir / path.name).write_text(json.dumps(prompt))
    shots = [shot(1, 1, "standard_flf"), shot(2, 1, "held_frame_push")]
    plan, stock = _compiler(tmp_path / "a", shots)
    _, edited = _compiler(tmp_path / "a", shots, templates_dir=tdir)
    for job in plan.jobs:
        a, b = stock.compile(job).prompt, edited.compile(job).prompt
        assert _by_title(b) - _by_title(a) == {("artist note", "Note", "{}")}
        assert _by_title(a) <= _by_title(b)


def test_compilation_is_deterministic_and_attempts_differ(tmp_path):
    plan, comp = _compiler(tmp_path, [shot(1, 1, "standard_flf")])
    job = plan.job("S01T01-video")
    one, again, two = comp.compile(job, 1), comp.compile(job, 1), comp.compile(job, 2)
    assert one.sha256 == again.sha256 and one.prompt == again.prompt
    assert two.sha256 != one.sha256 and two.seed == derive_seed(job.seed, 2)
    for c in (one, two):
        assert re.fullmatch(r"[A-Za-z0-9-]+", c.prompt_id)
    assert set(one.outputs.values()) == {"video", "report"}
    samplers = [one.prompt[n]["inputs"] for n in find(one.prompt, "Sampler High") + find(one.prompt, "Sampler Low")]
    assert [(s["start_at_step"], s["end_at_step"], s["add_noise"]) for s in samplers] == \
        [(0, 2, "enable"), (2, 10000, "disable")]
    assert {s["noise_seed"] for s in samplers} == {one.seed}


def test_stub_conditioning_replaces_text_encoding(tmp_path):
    cfg = load_config(REPO_ROOT / "configs" / "test_tiny_wan.yaml")
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "standard_flf")], model_profile="tiny_wan"))
    plan = make_plan(sb, cfg)
    c = Compiler(sb, cfg, "run").compile(plan.job("S01T01-video"))
    types = [n["class_type"] for n in c.prompt.values()]
    assert "CLIPTextEncode" not in types and "CLIPLoader" not in types
    (stub,) = find(c.prompt, "Conditioning Stub")
    flf = c.prompt[find(c.prompt, "First-Last Frame")[0]]["inputs"]
    assert flf["positive"] == [stub, 0] and flf["negative"] == [stub, 1]
    assert all(v[0] in c.prompt for n in c.prompt.values() for v in n["inputs"].values() if is_link(v))


def test_lora_chain_without_characters_or_speed_loras(tmp_path):
    cfg = build_config({"model_profiles": {"p": {"video": {"speed_loras": None}}}}, tmp_path)
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "standard_flf")], model_profile="p"))
    c = Compiler(sb, cfg, "run").compile(make_plan(sb, cfg).job("S01T01-video"))
    types = {n["class_type"] for n in c.prompt.values()}
    assert not types & {"AP_LoraStack", "AP_LoraStackFromRegistry", "AP_ApplyLoraStackWan22"}
    sampling = [c.prompt[n]["inputs"]["model"] for n in find(c.prompt, "Model Sampling")]
    assert sampling == [[find(c.prompt, "High Noise Model")[0], 0], [find(c.prompt, "Low Noise Model")[0], 0]]


def test_characters_bind_the_registry_inline_with_trigger_words(tmp_path):
    cfg = load_config(REPO_ROOT / "configs" / "project.example.yaml")
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "held_frame_static", characters_in_shot=["JINX"])],
                                          characters={"JINX": {"registry": "jinx"}}))
    c = Compiler(sb, cfg, "run").compile(make_plan(sb, cfg).job("S01T01-kf-hero"))
    reg = c.prompt[find(c.prompt, "Character LoRAs")[0]]["inputs"]
    assert reg["characters"] == "jinx" and reg["kind"] == "t2i" and json.loads(reg["registry"])["characters"]["jinx"]
    assert c.prompt[find(c.prompt, "Positive Prompt")[0]]["inputs"]["text"] == "JNXCHAR, a still"


def test_unknown_character_in_registry_names_the_shot(tmp_path):
    cfg = load_config(REPO_ROOT / "configs" / "project.example.yaml")
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "held_frame_static", characters_in_shot=["AKI"])]))
    with pytest.raises(Exception, match=r"\[S01T01\] characters: unknown character"):
        Compiler(sb, cfg, "run").compile(make_plan(sb, cfg).job("S01T01-kf-hero"))


def test_replace_with_one_drops_orphaned_sources():
    prompt = {"1": {"class_type": "Loader", "inputs": {}},
              "2": {"class_type": "Enc", "inputs": {"clip": ["1", 0]}, "_meta": {"title": "P"}},
              "3": {"class_type": "Enc", "inputs": {"clip": ["1", 0]}, "_meta": {"title": "N"}},
              "4": {"class_type": "Use", "inputs": {"a": ["2", 0], "b": ["3", 0]}}}
    new = replace_with_one(prompt, ["P", "N"], "Stub", {"t": 1}, "S")
    assert set(prompt) == {"4", new} and prompt["4"]["inputs"] == {"a": [new, 0], "b": [new, 1]}


def test_template_overrides_apply_and_are_checked(tmp_path):
    cfg = build_config({"template_overrides": {"held_static": {"Resize": {"upscale_method": "area"}}}}, tmp_path)
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, "held_frame_static")]))
    c = Compiler(sb, cfg, "run").compile(make_plan(sb, cfg).job("S01T01-video"))
    assert c.prompt[find(c.prompt, "Resize")[0]]["inputs"]["upscale_method"] == "area"
    bad = build_config({"template_overrides": {"held_static": {"Resize": {"nope": 1}}}}, tmp_path)
    with pytest.raises(TemplateError, match="has no input 'nope'"):
        Compiler(sb, bad, "run").compile(make_plan(sb, bad).job("S01T01-video"))
    with pytest.raises(Exception, match="unknown template"):
        Compiler(sb, build_config({"template_overrides": {"wan": {}}}, tmp_path), "run")


@pytest.mark.parametrize("approach,template", [("standard_flf", "wan22_flf"), ("triptych_split_flf", "wan22_split_flf")])
def test_identity_gate_follows_the_profile_clip_vision(tmp_path, approach, template):
    sb = load_storyboard(write_storyboard(tmp_path, [shot(1, 1, approach, duration_s=2.0)]))
    for clip_vision in (None, "clip_vision_h.safetensors"):
        cfg = build_config({"model_profiles": {"wan22_sdxl": {"video": {"clip_vision": clip_vision}}}}, tmp_path)
        c = Compiler(sb, cfg, "run").compile(make_plan(sb, cfg).job("S01T01-video"))
        types = {n["class_type"] for n in c.prompt.values()}
        report = c.prompt[find(c.prompt, "Quality Report")[0]]["inputs"]
        gates = {c.prompt[v[0]]["class_type"] for k, v in report.items() if k.startswith("gate_")}
        assert all(v[0] in c.prompt for n in c.prompt.values() for v in n["inputs"].values() if is_link(v))
        if clip_vision:
            assert "AP_IdentityGate" in gates
            assert c.prompt[find(c.prompt, "CLIP Vision")[0]]["inputs"]["clip_name"] == clip_vision
        else:
            assert not types & {"AP_IdentityGate", "CLIPVisionLoader"} and "AP_IdentityGate" not in gates
