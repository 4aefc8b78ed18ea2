"""Triptych splitting (core/triptych.py) on strips built from known panels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.imaging import from_uint8
from anime_pipeline.core.triptych import detect_layout, fit_frames, split_triptych

from .triptych_strips import CASES, DARK, LIGHT, StripCase


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_auto_recovers_the_exact_panels(case):
    strip, panels = case.build()
    first, hero, last, batch, report = split_triptych(from_uint8(strip))
    for got, want in zip((first, hero, last), panels):
        assert got.shape == (1, case.panel_h, case.panel_w, 3)
        assert torch.equal(got, from_uint8(want)), f"{report}"
    assert torch.equal(batch, torch.cat([first, hero, last]))
    json.dumps(report)
    boxes = report["strips"][0]["boxes"]
    expected_x = [case.left + i * (case.panel_w + case.gutter) for i in range(3)]
    assert [b["x"] for b in boxes] == expected_x
    assert {(b["y"], b["w"], b["h"]) for b in boxes} == {(case.top, case.panel_w, case.panel_h)}


def test_report_says_which_mode_was_used():
    with_gutters = StripCase(8, 8, 8, 8, 8, DARK)
    strip, _ = with_gutters.build()
    entry = split_triptych(from_uint8(strip))[4]["strips"][0]
    assert entry["mode"] == "auto" and entry["note"] is None and entry["gutter_color"] == list(DARK)
    no_gutters = StripCase(0, 0, 0, 0, 0)
    strip, _ = no_gutters.build()
    entry = split_triptych(from_uint8(strip))[4]["strips"][0]
    assert entry["mode"] == "thirds" and "no pair of gutters" in entry["note"]


def test_thirds_cuts_at_rounded_thirds_and_crops_to_a_common_width():
    strip = torch.rand(1, 10, 100, 3)
    layout = detect_layout(strip[0].numpy(), "thirds")
    # cuts at round(33.3) = 33 and round(66.7) = 67 -> widths 33, 34, 33 -> common 33
    assert [(b.x, b.w) for b in layout.boxes] == [(0, 33), (33, 33), (67, 33)]
    first, hero, last, _, _ = split_triptych(strip, mode="thirds")
    assert torch.equal(hero[0], strip[0, :, 33:66])
    assert torch.equal(last[0], strip[0, :, 67:100])


def test_batch_is_detected_strip_by_strip():
    a, pa = StripCase(4, 2, 2, 2, 2, LIGHT, seed=11).build()
    b, pb = StripCase(20, 0, 0, 10, 10, DARK, ("near", "plain", "flat"), seed=12).build()
    h = max(a.shape[0], b.shape[0])
    w = max(a.shape[1], b.shape[1])
    # IMAGE batches share one size: pad the smaller strip with its own gutter colour
    canvas = np.empty((2, h, w, 3), np.uint8)
    canvas[0], canvas[1] = LIGHT, DARK
    canvas[0, :a.shape[0], :a.shape[1]] = a
    canvas[1, :b.shape[0], :b.shape[1]] = b
    first, hero, last, panels, report = split_triptych(from_uint8(canvas))
    assert panels.shape == (6, 160, 96, 3)
    for i, want in enumerate(pa + pb):
        assert torch.equal(panels[i], from_uint8(want)[0])
    assert torch.equal(hero, panels[[1, 4]])
    assert [s["index"] for s in report["strips"]] == [0, 1]


def test_unequal_panel_sizes_need_a_target_size():
    a, _ = StripCase(6, 6, 6, 6, 6, LIGHT, panel_w=96).build()
    b, _ = StripCase(6, 6, 6, 6, 6, LIGHT, panel_w=90, seed=3).build()
    canvas = np.empty((2, *a.shape), np.uint8)
    canvas[:] = LIGHT
    canvas[0] = a
    canvas[1, :, :b.shape[1]] = b
    with pytest.raises(InputError, match=r"strip: .*different sizes.*strip 0: 96x160, strip 1: 90x160.*target_width"):
        split_triptych(from_uint8(canvas))
    first, *_ = split_triptych(from_uint8(canvas), target_width=64, target_height=112)
    assert first.shape == (2, 112, 64, 3)


def test_trim_margin_shrinks_every_panel():
    case = StripCase(10, 10, 10, 10, 10, DARK)
    strip, panels = case.build()
    first, *_, report = split_triptych(from_uint8(strip), trim_margin=4)
    assert torch.equal(first[0], from_uint8(panels[0])[0, 4:-4, 4:-4])
    assert report["strips"][0]["boxes"][0] == {"panel": "first", "x": 14, "y": 14, "w": 88, "h": 152}
    with pytest.raises(InputError, match="trim_margin"):
        split_triptych(from_uint8(strip), trim_margin=48)


def _halves(w=100, h=50):
    img = torch.zeros(1, h, w, 3)
    img[:, :, : w // 2, 0] = 1.0  # red | blue
    img[:, :, w // 2:, 2] = 1.0
    return img


def test_fit_crop_pad_stretch():
    img = _halves()
    crop = fit_frames(img, 64, 64, "crop")  # cover: scale 1.28 -> 128x64, centre crop
    assert crop.shape == (1, 64, 64, 3)
    assert crop[0, :, :26, 0].min() > 0.99 and crop[0, :, 38:, 2].min() > 0.99  # Lanczos rings ~5 px
    pad = fit_frames(img, 64, 64, "pad")  # contain: scale 0.64 -> 64x32 centred, 16 black rows each side
    assert pad[0, :16].abs().max() == 0 and pad[0, 48:].abs().max() == 0
    assert pad[0, 20:44, :28, 0].min() > 0.95
    stretch = fit_frames(img, 30, 80, "stretch")
    assert stretch.shape == (1, 80, 30, 3) and stretch[0, :, :13, 0].min() > 0.99


def test_target_with_one_side_keeps_the_aspect():
    strip, _ = StripCase(8, 8, 8, 8, 8, LIGHT, panel_w=96, panel_h=160).build()
    first, *_, report = split_triptych(from_uint8(strip), target_width=192)
    assert first.shape == (1, 320, 192, 3) and report["output_size"] == [192, 320]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"strips": torch.zeros(0, 10, 30, 3)}, "strip: empty batch"),
        ({"strips": torch.rand(1, 10, 8, 3)}, "strip: strip is 8 px wide"),
        ({"strips": torch.full((1, 10, 30, 3), float("nan"))}, "strip: NaN"),
        ({"strips": torch.rand(1, 10, 30, 3), "mode": "halves"}, "mode: must be one of"),
        ({"strips": torch.rand(1, 10, 30, 3), "fit": "zoom"}, "fit: must be one of"),
        ({"strips": torch.rand(1, 10, 30, 3), "target_width": -2}, "target_width"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        split_triptych(**kwargs)


@pytest.mark.parametrize("case", [CASES[4], CASES[7], CASES[10]], ids=lambda c: c.id)
def test_auto_tolerates_diffusion_like_noise_and_soft_edges(case):
    strip, _ = case.build()
    rng = np.random.default_rng(0)
    soft = cv2.GaussianBlur(strip, (0, 0), 0.6).astype(np.float32) + rng.normal(0, 1.5, strip.shape)
    noisy = np.clip(np.round(soft), 0, 255).astype(np.uint8)
    boxes = split_triptych(from_uint8(noisy))[4]["strips"][0]["boxes"]
    for i, b in enumerate(boxes):
        x = case.left + i * (case.panel_w + case.gutter)
        edges = (b["x"] - x, b["y"] - case.top, b["x"] + b["w"] - x - case.panel_w, b["y"] + b["h"] - case.top - case.panel_h)
        assert max(map(abs, edges)) <= 3, boxes


def test_node_returns_panels_and_the_boxes_as_json():
    from anime_pipeline.nodes.image import TriptychSplit

    strip, panels = CASES[4].build()
    first, hero, last, batch, boxes = TriptychSplit().split(from_uint8(strip))
    assert torch.equal(last, from_uint8(panels[2])) and batch.shape[0] == 3
    assert json.loads(boxes)["strips"][0]["mode"] == "auto"


def test_a_gutter_coloured_pillar_inside_a_panel_is_not_a_gutter():
    case = StripCase(6, 6, 6, 6, 6, LIGHT, seed=13)
    strip, panels = case.build()
    x_hero = case.left + case.panel_w + case.gutter
    strip[:, x_hero + 40:x_hero + 52] = LIGHT  # full-height flat band, exactly the gutter colour
    panels[1][:, 40:52] = LIGHT
    first, hero, last, _, report = split_triptych(from_uint8(strip))
    assert report["strips"][0]["mode"] == "auto"
    for got, want in zip((first, hero, last), panels):
        assert torch.equal(got, from_uint8(want))


def test_a_flat_strip_is_cut_in_thirds_with_a_note():
    entry = split_triptych(torch.full((1, 20, 60, 3), 0.5))[4]["strips"][0]
    assert entry["mode"] == "thirds" and "flat" in entry["note"]
