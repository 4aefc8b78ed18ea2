"""Finding, checking and caching LoRA files (no ComfyUI)."""

from __future__ import annotations

import os

import pytest
import torch

from anime_pipeline.core.lora.files import LoraFileCache, check_lora, load_checked, read_lora
from anime_pipeline.core.lora.paths import resolve_file
from devkit.loratools import wan_lora, write


def test_resolve_searches_every_folder_in_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(wan_lora(), b / "chars" / "x.safetensors")
    assert resolve_file("chars/x.safetensors", [a, b]) == b / "chars" / "x.safetensors"
    write(wan_lora(), a / "chars" / "x.safetensors")
    assert resolve_file("chars\\x.safetensors", [a, b]) == a / "chars" / "x.safetensors"


def test_missing_file_names_file_and_folders(tmp_path):
    with pytest.raises(ValueError) as err:
        resolve_file("nope.safetensors", [tmp_path / "a", tmp_path / "b"])
    msg = str(err.value)
    assert "'nope.safetensors' not found" in msg and str(tmp_path / "a") in msg and str(tmp_path / "b") in msg


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.safetensors", "a/../../b.safetensors", ""])
def test_names_must_stay_inside_the_folder(tmp_path, name):
    with pytest.raises(ValueError, match="relative to the loras folder"):
        resolve_file(name, [tmp_path])


def test_read_roundtrip_and_torch_files(tmp_path):
    sd = wan_lora()
    got = read_lora(write(sd, tmp_path / "x.safetensors"))
    assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
    torch.save({"state_dict": sd}, tmp_path / "x.pt")  # nested like some trainers write it
    assert torch.equal(read_lora(tmp_path / "x.pt")["diffusion_model.blocks.0.ffn.0.alpha"], torch.tensor(4.0))


def test_invalid_safetensors_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match=r"'bad.safetensors' is not a valid safetensors file"):
        load_checked(bad, "bad.safetensors")


def test_not_a_lora_empty_and_nan(tmp_path):
    with pytest.raises(ValueError, match="is not a LoRA: none of its 2 keys"):
        check_lora({"model.diffusion_model.x.weight": torch.zeros(2), "y.bias": torch.zeros(2)}, "ckpt")
    with pytest.raises(ValueError, match="holds no tensors"):
        check_lora({}, "empty")
    sd = wan_lora()
    sd["diffusion_model.blocks.0.ffn.0.lora_up.weight"][0, 0] = float("nan")
    sd["diffusion_model.blocks.0.ffn.2.lora_down.weight"][1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or inf values in 2 tensor\(s\): diffusion_model.blocks.0.ffn.0.lora_up"):
        load_checked(write(sd, tmp_path / "nan.safetensors"), "nan.safetensors")


def test_fp8_nan_is_detected():
    sd = wan_lora()
    sd["diffusion_model.blocks.0.ffn.0.lora_up.weight"] = torch.full((256, 4), float("nan")).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_lora(sd, "fp8")


def counting_loader():
    calls = []

    def loader(path):
        calls.append(os.path.basename(path))
        return read_lora(path)

    return loader, calls


def test_cache_reads_once_and_rereads_when_the_file_changes(tmp_path):
    path = write(wan_lora(0), tmp_path / "x.safetensors")
    cache, (loader, calls) = LoraFileCache(), counting_loader()
    first = cache.get(path, loader=loader)
    assert cache.get(path, loader=loader) is first and calls == ["x.safetensors"] and cache.hits == 1
    write(wan_lora(1), path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = cache.get(path, loader=loader)
    assert calls == ["x.safetensors"] * 2 and second is not first and len(cache) == 1
    assert not torch.equal(second["diffusion_model.blocks.0.ffn.0.lora_up.weight"],
                           first["diffusion_model.blocks.0.ffn.0.lora_up.weight"])


def test_cache_evicts_least_recently_used(tmp_path):
    paths = [write(wan_lora(i), tmp_path / f"{i}.safetensors") for i in range(3)]
    cache, (loader, calls) = LoraFileCache(max_entries=2), counting_loader()
    cache.get(paths[0], loader=loader)
    cache.get(paths[1], loader=loader)
    cache.get(paths[0], loader=loader)  # 0 is now the most recent
    cache.get(paths[2], loader=loader)  # evicts 1
    cache.get(paths[0], loader=loader)
    assert calls == ["0.safetensors", "1.safetensors", "2.safetensors"]
    cache.get(paths[1], loader=loader)
    assert calls[-1] == "1.safetensors" and len(cache) == 2


def test_cache_byte_budget(tmp_path):
    one = sum(t.numel() * t.element_size() for t in wan_lora().values())
    paths = [write(wan_lora(i), tmp_path / f"{i}.safetensors") for i in range(3)]
    cache = LoraFileCache(max_entries=10, max_bytes=2 * one)
    for p in paths:
        cache.get(p)
    assert len(cache) == 2 and cache.nbytes == 2 * one
    tiny = LoraFileCache(max_bytes=one - 1)
    assert tiny.get(paths[0]) and len(tiny) == 0 and tiny.nbytes == 0  # too big to keep, still returned


def test_bad_files_are_not_cached(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    cache = LoraFileCache()
    for _ in range(2):
        with pytest.raises(ValueError, match="not a valid safetensors"):
            cache.get(bad)
    assert len(cache) == 0
