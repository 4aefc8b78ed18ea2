"""The UI->API converter used to test the example workflows (devkit/harness/ui2api.py)."""

import pytest

from devkit.harness.ui2api import ConversionError, convert

OBJECT_INFO = {
    "LoadImage": {"input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}},
                  "input_order": {"required": ["image"]}},
    "KSamplerLike": {"input": {"required": {"image": ["IMAGE", {}], "seed": ["INT", {"control_after_generate": True}],
                                            "mode": [["x", "y"], {}], "strength": ["FLOAT", {}]},
                               "optional": {"note": ["STRING", {"forceInput": True}]}},
                     "input_order": {"required": ["image", "seed", "mode", "strength"], "optional": ["note"]}},
    "Sink": {"input": {"required": {"images": ["IMAGE", {}]}}, "input_order": {"required": ["images"]}},
}


def workflow(widgets, mode=0):
    return {
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "widgets_values": ["a.png", "image"], "inputs": []},
            {"id": 2, "type": "KSamplerLike", "mode": mode, "widgets_values": widgets,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1}]},
            {"id": 3, "type": "Sink", "mode": 0, "title": "Out", "inputs": [{"name": "images", "type": "IMAGE", "link": 2}]},
            {"id": 4, "type": "Note", "mode": 0, "widgets_values": ["hello"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    }


def test_widgets_map_in_input_order_skipping_ui_only_values():
    api = convert(workflow([42, "randomize", "y", 0.5]), OBJECT_INFO)
    assert api["1"] == {"class_type": "LoadImage", "inputs": {"image": "a.png"}}
    assert api["2"]["inputs"] == {"image": ["1", 0], "seed": 42, "mode": "y", "strength": 0.5}
    assert api["3"] == {"class_type": "Sink", "inputs": {"images": ["2", 0]}, "_meta": {"title": "Out"}}
    assert "4" not in api


def test_misordered_widgets_fail():
    with pytest.raises(ConversionError, match="out of order"):
        convert(workflow([42, "randomize", 0.5, "y"]), OBJECT_INFO)


def test_wrong_widget_count_fails():
    with pytest.raises(ConversionError, match="widget values"):
        convert(workflow([42, "randomize", "y", 0.5, 7]), OBJECT_INFO)


def test_bypassed_node_passes_its_input_through():
    api = convert(workflow([42, "randomize", "y", 0.5], mode=4), OBJECT_INFO)
    assert "2" not in api
    assert api["3"]["inputs"] == {"images": ["1", 0]}
