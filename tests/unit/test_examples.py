"""The pack's example workflows keep what an artist needs in the canvas, checked on the
files (no server): their inputs ship in the pack, every model file is named in
``properties.models`` and in the Models note, a thumbnail sits beside each, the layout is
one group per stage left to right, notes clear of nodes and wires, and the saved view
shows the whole graph at 1600x1000. Every ``example_workflows/*.json`` is covered,
including ones added later; the browser test checks the same files in ComfyUI itself."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from anime_pipeline import examples
from anime_pipeline.examples import (
    EXAMPLE_INPUTS,
    EXAMPLE_WORKFLOWS,
    MODEL_SOURCES,
    copy_example_inputs,
)
from PIL import Image

from driver import canvas, ui_export

EXAMPLES = sorted(EXAMPLE_WORKFLOWS.glob("*.json"))
MODEL_FOLDERS = {"checkpoints", "diffusion_models", "text_encoders", "vae", "loras", "clip_vision", "upscale_models",
                 "interpolation"}
# Official sources: Hugging Face repositories, or a GitHub release asset for files published only there.
OFFICIAL_HOSTS = ("https://huggingface.co/", "https://github.com/")
ids = [p.stem for p in EXAMPLES]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _box(node: dict) -> tuple[float, float, float, float]:
    x, y = node["pos"]
    return x, y - canvas.TITLE_H, x + node["size"][0], y + node["size"][1]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _link_boxes(wf: dict) -> list[tuple[float, float, float, float]]:
    """Boxes holding each link's spline (frontend: control points a quarter of the
    distance right of the output and left of the input, so y stays between the ends)."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    boxes = []
    for _, src, src_slot, dst, dst_slot, _type in wf["links"]:
        x0 = nodes[src]["pos"][0] + nodes[src]["size"][0]
        y0 = nodes[src]["pos"][1] + 10 + 20 * src_slot
        x1, y1 = nodes[dst]["pos"][0], nodes[dst]["pos"][1] + 10 + 20 * dst_slot
        reach = 0.25 * ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        boxes.append((min(x0, x1 - reach), min(y0, y1), max(x1, x0 + reach), max(y0, y1)))
    return boxes


def test_examples_and_inputs_exist():
    assert len(EXAMPLES) >= 14
    inputs = [p for p in EXAMPLE_INPUTS.iterdir() if p.is_file()]
    assert inputs and sum(p.stat().st_size for p in inputs) < 300_000, "example inputs must stay small"
    assert not list(EXAMPLE_WORKFLOWS.glob("*.json.jpg")), "thumbnails are <name>.jpg, not <name>.json.jpg"


@pytest.mark.parametrize("path", EXAMPLES, ids=ids)
def test_title_thumbnail_and_inputs(path):
    assert "_" not in path.stem and path.stem[0].isupper(), "the file name is the template browser's title"
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"no thumbnail: run python -m devkit.harness.thumbnails '{path.stem}'"
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and min(img.size) >= 128
    assert thumb.stat().st_size < 60_000
    for node in _load(path)["nodes"]:
        if node["type"] == "LoadImage":
            assert (EXAMPLE_INPUTS / node["widgets_values"][0]).is_file(), "inputs must ship in example_inputs/"


@pytest.mark.parametrize("path", EXAMPLES, ids=ids)
def test_every_model_file_is_named_for_the_missing_models_dialog(path):
    wf = _load(path)
    note = "".join(n["widgets_values"][0] for n in wf["nodes"] if n.get("title") == canvas.MODELS_NOTE)
    for node in wf["nodes"]:
        files = examples.node_model_files(node) if node["type"] not in canvas.NOTE_TYPES else []
        listed = node.get("properties", {}).get("models", [])
        expected = [{"name": f, "url": MODEL_SOURCES[f][1], "directory": MODEL_SOURCES[f][0]}
                    for f in files if MODEL_SOURCES[f][1]]
        assert listed == expected, f"node {node['id']} {node['type']}"
        for entry in listed:
            assert entry["directory"] in MODEL_FOLDERS and entry["url"].startswith(OFFICIAL_HOSTS)
            assert not entry["url"].startswith("https://github.com/") or "/releases/download/" in entry["url"]
            assert entry["url"].endswith("/" + entry["name"].rsplit("/", 1)[-1])
        assert all(f"`{MODEL_SOURCES[f][0]}/{f}`" in note for f in files)
    for f in examples.sibling_files(wf["nodes"]):
        assert f"`{MODEL_SOURCES[f][0]}/{f}`" in note
        assert MODEL_SOURCES[f][1] is None or examples.model_entry(f) in wf["models"]


@pytest.mark.parametrize("path", EXAMPLES, ids=ids)
def test_layout_groups_stages_left_to_right_with_notes_clear_of_wires(path):
    wf = _load(path)
    stage_of = canvas.stages(wf)
    groups = wf["groups"]
    titles = [g["title"].split(" ", 1)[1] for g in groups]
    assert titles == [s for s in canvas.STAGES if s in stage_of.values()]
    assert all(a["bounding"][0] + a["bounding"][2] <= b["bounding"][0] for a, b in itertools.pairwise(groups))
    nodes = [n for n in wf["nodes"] if n["type"] not in canvas.NOTE_TYPES]
    for node in nodes:
        (group,) = [g for g in groups if _overlap(_box(node), canvas_box(g))]
        assert group["title"].endswith(stage_of[node["id"]]) and _inside(_box(node), canvas_box(group))
    boxes = [_box(n) for n in wf["nodes"]]
    assert not [(a, b) for k, a in enumerate(boxes) for b in boxes[k + 1:] if _overlap(a, b)], "nodes overlap"
    for note in (n for n in wf["nodes"] if n["type"] in canvas.NOTE_TYPES):
        assert not any(_overlap(_box(note), g) for g in map(canvas_box, groups)), "a note over a group"
        assert not any(_overlap(_box(note), link) for link in _link_boxes(wf)), "a note over a wire"


@pytest.mark.parametrize("path", EXAMPLES, ids=ids)
def test_saved_view_shows_the_whole_graph_at_1600x1000(path):
    wf = _load(path)
    ds = wf["extra"]["ds"]
    width, height = canvas.CANVAS
    for box in [_box(n) for n in wf["nodes"]] + [canvas_box(g) for g in wf["groups"]]:
        x0, y0, x1, y1 = ((v + ds["offset"][k % 2]) * ds["scale"] for k, v in enumerate(box))
        assert 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height
    for node in wf["nodes"]:
        x0, y0, x1, y1 = ((v + ds["offset"][k % 2]) * ds["scale"] for k, v in enumerate(_box(node)))
        assert not (x1 > canvas.MINIMAP[0] and y1 > canvas.MINIMAP[1]), f"{node.get('title')} under the minimap"


def canvas_box(group: dict) -> tuple[float, float, float, float]:
    x, y, w, h = group["bounding"]
    return x, y, x + w, y + h


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def test_copy_example_inputs_is_idempotent_and_leaves_other_files(tmp_path):
    mine = tmp_path / "input" / "mine.png"
    mine.parent.mkdir()
    mine.write_bytes(b"artist's own")
    placed = copy_example_inputs(tmp_path / "input")
    assert sorted(p.name for p in placed) == sorted(p.name for p in EXAMPLE_INPUTS.iterdir())
    assert all(p.read_bytes() == (EXAMPLE_INPUTS / p.name).read_bytes() for p in placed)
    stamp = [p.stat().st_mtime_ns for p in placed]
    assert copy_example_inputs(tmp_path / "input") == placed
    assert [p.stat().st_mtime_ns for p in placed] == stamp and mine.read_bytes() == b"artist's own"
    placed[0].write_bytes(b"changed by the artist")
    copy_example_inputs(tmp_path / "input")
    assert placed[0].read_bytes() == b"changed by the artist"


def test_copy_example_inputs_command(tmp_path, capsys):
    assert examples.main([str(tmp_path / "in")]) == 0
    assert "example inputs in" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        examples.main([str(tmp_path / "file")])
    assert exit_.value.code == 2 and "is not a folder" in capsys.readouterr().err


# A three-node template and just enough /object_info for ui_export.
INFO = {
    "LoadImage": {"input": {"required": {"image": [["a.png"], {"image_upload": True}]}},
                  "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"]},
    "ImageScale": {"input": {"required": {"image": ["IMAGE"], "width": ["INT", {"default": 512}]}},
                   "input_order": {"required": ["image", "width"]}, "output": ["IMAGE"]},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "x"}]}},
                  "input_order": {"required": ["images", "filename_prefix"]}, "output": []},
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd_xl_base_1.0.safetensors"]]}},
                               "input_order": {"required": ["ckpt_name"]}, "output": ["MODEL", "CLIP", "VAE"]},
}
TEMPLATE = {"1": {"class_type": "LoadImage", "inputs": {"image": "ap_example_keyframe.png"}, "_meta": {"title": "Key"}},
            "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "width": 640}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "out"}}}


def test_ui_export_keeps_layout_groups_and_notes_of_the_shipped_twin():
    first = ui_export.to_ui(TEMPLATE, INFO, name="tiny")
    assert [g["title"] for g in first["groups"]] == ["1 Load", "2 Video", "3 Output"]
    assert any(n.get("title") == ui_export.ABOUT for n in first["nodes"])
    edited = json.loads(json.dumps(first))
    edited["nodes"][0]["pos"] = [-500, 40]
    edited["groups"][0]["title"] = "Inputs"
    edited["nodes"][-1]["widgets_values"] = ["my own words"]
    edited["extra"]["ds"]["scale"] = 0.9
    template = json.loads(json.dumps(TEMPLATE))
    template["2"]["inputs"]["width"] = 720
    again = ui_export.to_ui(template, INFO, name="tiny", previous=edited)
    assert again["nodes"][0]["pos"] == [-500, 40] and again["groups"][0]["title"] == "Inputs"
    assert again["extra"]["ds"]["scale"] == 0.9 and again["nodes"][-1]["widgets_values"] == ["my own words"]
    assert next(n for n in again["nodes"] if n["id"] == 2)["widgets_values"] == [720]


def test_ui_export_lays_out_anew_when_nodes_change_and_names_models():
    previous = ui_export.to_ui(TEMPLATE, INFO, name="tiny")
    previous["nodes"][-1]["widgets_values"] = ["kept"]
    template = {**TEMPLATE, "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}
    ui = ui_export.to_ui(template, INFO, name="tiny", previous=previous)
    loader = next(n for n in ui["nodes"] if n["type"] == "CheckpointLoaderSimple")
    assert loader["properties"]["models"] == [examples.model_entry("sd_xl_base_1.0.safetensors")]
    assert ["kept"] in [n["widgets_values"] for n in ui["nodes"]]
    assert any(n.get("title") == canvas.MODELS_NOTE for n in ui["nodes"])
    assert len({n["id"] for n in ui["nodes"]}) == len(ui["nodes"])


def test_an_unknown_model_file_is_a_clear_error(tmp_path, capsys):
    template = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "mystery.safetensors"}}}
    (tmp_path / "t.api.json").write_text(json.dumps(template))
    info = json.loads(json.dumps(INFO))
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"] = [["mystery.safetensors"]]
    (tmp_path / "info.json").write_text(json.dumps(info))
    with pytest.raises(SystemExit):
        ui_export.main([str(tmp_path / "t.api.json"), "--object-info", str(tmp_path / "info.json"),
                        "--out", str(tmp_path / "out")])
    assert "'mystery.safetensors', which is not in anime_pipeline.examples.MODEL_SOURCES" in capsys.readouterr().err


def test_twin_names_sort_together_and_read_as_titles():
    names = [ui_export.twin_path(Path(f"{s}.api.json"), Path(".")).name for s in ("wan22_split_flf", "t2i_unet")]
    assert names == ["Driver template - WAN 2.2 Split FLF.json", "Driver template - T2I UNet.json"]
