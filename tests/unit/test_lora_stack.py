"""Stack rows and the AP_LoraStack node (no ComfyUI needed)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from anime_pipeline.core.errors import InputError
from anime_pipeline.core.lora.stack import LoraRow, check_stack, extend_stack, row_from_widgets
from anime_pipeline.nodes.lora import ROWS, AP_LoraStack


def widgets(*rows):
    """AP_LoraStack kwargs: the given (file, s_model, s_clip, target) rows, the rest empty."""
    kw = {}
    for i in range(1, ROWS + 1):
        f, sm, sc, t = rows[i - 1] if i <= len(rows) else ("None", 1.0, 1.0, "auto")
        kw.update({f"lora_name_{i}": f, f"strength_model_{i}": sm, f"strength_clip_{i}": sc, f"target_{i}": t})
    return kw


def test_row_is_frozen_and_normalises_numbers():
    row = LoraRow("a.safetensors", 1, 0)
    assert row.strength_model == 1.0 and isinstance(row.strength_model, float)
    assert row.target == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.strength_model = 2.0


@pytest.mark.parametrize("kw, field", [
    ({"strength_model": 100.5}, "strength_model"),
    ({"strength_clip": -101}, "strength_clip"),
    ({"strength_model": math.nan}, "strength_model"),
    ({"strength_model": math.inf}, "strength_model"),
    ({"strength_model": True}, "strength_model"),
    ({"target": "middle"}, "target"),
])
def test_row_rejects_bad_values(kw, field):
    with pytest.raises(ValueError, match=field):
        LoraRow("a.safetensors", **kw)


def test_row_rejects_empty_or_none_file():
    for bad in ("", "  ", "None", None):
        with pytest.raises(ValueError, match="file"):
            LoraRow(bad)


def test_widget_rows_drop_none_and_double_zero():
    assert row_from_widgets(1, "None", 1.0, 1.0, "auto") is None
    assert row_from_widgets(1, "a.safetensors", 0.0, 0.0, "auto") is None
    assert row_from_widgets(1, "a.safetensors", 0.0, 0.5, "auto") == LoraRow("a.safetensors", 0.0, 0.5)


def test_widget_errors_name_the_widget_and_value():
    with pytest.raises(InputError, match=r"AP_LoraStack\.strength_clip_3: .*250") as err:
        row_from_widgets(3, "a.safetensors", 1.0, 250.0, "auto", node="AP_LoraStack")
    assert err.value.input_name == "strength_clip_3"


def test_stack_node_builds_in_row_order_and_drops_empty_rows():
    (stack,) = AP_LoraStack().build(**widgets(("style.safetensors", 0.7, 0.6, "both"), ("None", 1, 1, "auto"),
                                              ("off.safetensors", 0, 0, "auto"), ("char.safetensors", 1, 1, "high")))
    assert stack == (LoraRow("style.safetensors", 0.7, 0.6, "both"), LoraRow("char.safetensors", 1.0, 1.0, "high"))
    assert isinstance(stack, tuple)


def test_chaining_puts_upstream_first_and_never_mutates_it():
    (first,) = AP_LoraStack().build(**widgets(("a.safetensors", 1, 1, "auto")))
    snapshot = tuple(first)
    (second,) = AP_LoraStack().build(lora_stack=first, **widgets(("b.safetensors", 0.5, 0.5, "auto")))
    assert [r.file for r in second] == ["a.safetensors", "b.safetensors"]
    assert first == snapshot and len(first) == 1
    assert extend_stack(None, []) == ()


def test_check_stack_rejects_foreign_values():
    assert check_stack(None) == ()
    with pytest.raises(InputError, match=r"lora_stack: .*row\(s\) \[2\]"):
        check_stack((LoraRow("a.safetensors"), ("b.safetensors", 1.0, 1.0)))
    with pytest.raises(InputError, match="dict"):
        check_stack({"file": "a"})


def test_input_types_has_six_rows_with_tooltips_and_imports_without_comfyui():
    spec = AP_LoraStack.INPUT_TYPES()
    req = spec["required"]
    assert len(req) == 4 * ROWS == 24
    assert req["lora_name_1"][0] == ["None"]  # no ComfyUI here: only the None entry
    assert all(opts.get("tooltip") for _, opts in list(req.values()) + list(spec["optional"].values()))
    assert req["strength_model_6"][1]["min"] == -100.0 and req["target_6"][0] == ["auto", "high", "low", "both"]
