"""The enhance path's memory shortcuts change no pixel: reused scratch arrays, the 8-bit frames a
chunk was loaded from kept with its IMAGE tensor, raw chunk frames read as views, copied source
frames encoded as decoded (timestamps rebased to the output's), upload names hashed once."""

from __future__ import annotations

import gc
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from anime_pipeline.core import chunkio, flow, imaging
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.interpolate import FlowInterpolator
from anime_pipeline.core.retime import retime
from anime_pipeline.core.validate import InputError, check_images
from driver.enhance import assemble
from driver.enhance.probe import FrameSource, probe
from tests.unit.test_enhance import labels_of


def _frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth moving content (so the flow has something to find), uint8 RGB."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 4 + 2, w // 4 + 2, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((4, 4, 1), np.uint8))
    return [np.ascontiguousarray(np.roll(big, 2 * i, axis=1)[:h, :w]) for i in range(n)]


# ---------------------------------------------------------------- the interpolator's scratch arrays
def test_scratch_reuse_across_sizes_and_threads_gives_the_fresh_result():
    pairs = [tuple(_frames(2, h, w, seed)) for seed, (h, w) in enumerate([(72, 128), (40, 60), (72, 128)])]
    expected = [FlowInterpolator().interpolate(a, b, [0.25, 0.5]) for a, b in pairs]  # one fresh instance each
    shared = FlowInterpolator()
    again = [shared.interpolate(a, b, [0.25, 0.5]) for a, b in pairs]
    assert all(np.array_equal(g, e) for g, e in zip(again, expected, strict=True))
    results: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        results[k] = [shared.interpolate(a, b, [0.25, 0.5]) for a, b in pairs * 3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        assert all(np.array_equal(g, e) for g, e in zip(got, expected * 3, strict=True))


def test_sampling_map_and_remap_write_into_the_given_array():
    rng = np.random.default_rng(1)
    small = rng.normal(0, 2, (9, 16, 2)).astype(np.float32)
    image = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    out_map = np.empty((36, 64, 2), np.float32)
    m = flow.sampling_map(small, 36, 64, out=out_map)
    assert m is out_map and np.array_equal(m, flow.sampling_map(small, 36, 64))
    out_img = np.empty_like(image)
    assert flow.remap(image, m, out=out_img) is out_img
    assert np.array_equal(out_img, flow.remap(image, m))


# ---------------------------------------------------------------- 8-bit frames kept with their tensor
def test_a_loaded_chunk_keeps_its_8bit_frames_until_written_to(tmp_path):
    frames = _frames(4, 24, 32)
    path = tmp_path / "c.nut"
    chunkio.write_chunk(path, frames, 24, 8, raw=True)
    images, _, _ = chunkio.load_tensor(path)
    kept = imaging.exact_uint8(images)
    assert kept is not None and all(np.array_equal(k, f) for k, f in zip(kept, frames, strict=True))
    assert imaging.exact_uint8(images.clone()) is None  # another tensor, same values: not assumed
    images[0, 0, 0, 0] = float("nan")  # torch counts the write
    assert imaging.exact_uint8(images) is None
    with pytest.raises(InputError, match="NaN"):  # so the finiteness check runs again
        check_images(images, "frames")


def test_inference_tensors_are_tracked_by_identity_and_forgotten_when_freed(tmp_path):
    path = tmp_path / "c.nut"
    chunkio.write_chunk(path, _frames(2, 8, 8), 24, 8, raw=True)
    with torch.inference_mode():  # as ComfyUI runs nodes
        images, _, _ = chunkio.load_tensor(path)
    assert images.is_inference() and imaging.exact_uint8(images) is not None
    before = len(imaging._EXACT)
    del images
    gc.collect()
    assert len(imaging._EXACT) == before - 1


def test_16bit_chunks_are_not_kept_as_8bit(tmp_path):
    path = tmp_path / "c.nut"
    chunkio.write_chunk(path, [f.astype(np.uint16) * 257 for f in _frames(2, 8, 8)], 24, 16, raw=True)
    images, _, bits = chunkio.load_tensor(path)
    assert bits == 16 and imaging.exact_uint8(images) is None


def test_retime_of_a_loaded_chunk_equals_retime_of_the_same_values(tmp_path):
    frames = _frames(6, 48, 80)
    path = tmp_path / "c.nut"
    chunkio.write_chunk(path, frames, 24, 8, raw=True)
    images, _, _ = chunkio.load_tensor(path)
    labels = MotionLabels(labels_of("mmhmm"), 6)
    plain, _ = retime(images.clone(), 24, 48, labels, interpolator=FlowInterpolator())
    kept, _ = retime(images, 24, 48, labels, interpolator=FlowInterpolator())
    assert torch.equal(kept, plain)
    assert imaging.exact_uint8(images) is None  # released by its reader (not held into the next chunk)
    again, _ = retime(images, 24, 48, labels, interpolator=FlowInterpolator())  # converted again: same frames
    assert torch.equal(again, plain)


def test_raw_chunk_frames_are_read_only_views_equal_to_the_written_frames(tmp_path):
    for bits, (h, w) in ((8, (5, 7)), (8, (37, 100)), (16, (17, 33))):
        frames = _frames(3, h, w)
        if bits == 16:
            frames = [f.astype(np.uint16) * 257 for f in frames]
        path = tmp_path / f"c{bits}_{w}.nut"
        chunkio.write_chunk(path, frames, 24, bits, raw=True)
        back = list(chunkio.iter_chunk(path))
        assert all(np.array_equal(b, f) for b, f in zip(back, frames, strict=True))
        assert not back[0].flags.writeable


# ---------------------------------------------------------------- copies encoded as decoded
def _source(tmp_path, n=12, size=(64, 48)) -> tuple:
    path = tmp_path / "src.mkv"  # Matroska: a 1/1000 time base, not the output's
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24, options={"crf": "0"})
        s.width, s.height, s.pix_fmt = *size, "yuv420p"
        for i, rgb in enumerate(_frames(n, size[1], size[0])):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return path, probe(path)


def test_native_copies_only_for_unrotated_yuv_in_the_output_format(tmp_path):
    _, info = _source(tmp_path)
    assert assemble.native_copies(info, (64, 48)) and assemble.native_copies(info, (128, 96))
    from dataclasses import replace
    assert not assemble.native_copies(replace(info, rotation=90), (64, 48))
    assert not assemble.native_copies(replace(info, pix_fmt="yuvj420p"), (64, 48))  # full range: its own format
    assert not assemble.native_copies(replace(info, pix_fmt="gbrp"), (64, 48))


def test_decoded_frames_encode_with_the_output_timestamps_and_their_own_pixels(tmp_path):
    src, info = _source(tmp_path)
    decoded = list(FrameSource(info).decoded())
    assert all(isinstance(f, av.VideoFrame) for f in decoded) and decoded[0].pict_type != 0  # an I frame
    target = tmp_path / "out.mkv"
    frames = [x for f in decoded for x in (f, f)]  # each shown twice (24 -> 48): the same object again
    assemble.encode(target, info, iter(frames), len(frames) + 3, Fraction(48), (64, 48), assemble.Span(0, 0.5))
    back = probe(target)
    assert back.fps == 48 and abs(back.duration - (len(frames) + 3) / 48) < 1e-3
    with av.open(str(target)) as c:
        times = [f.time for f in c.decode(video=0)]
    assert len(times) == len(frames) + 3 and times == sorted(times)
    assert np.allclose(np.diff(times), 1 / 48, atol=1e-3)


def test_a_copy_in_another_pixel_format_goes_through_rgb(tmp_path):
    _, info = _source(tmp_path)
    frame = next(FrameSource(info).decoded())
    from av.video.reformatter import VideoReformatter
    other = frame.reformat(format="yuv444p")
    out = assemble._to_frame(other, info, "yuv420p", VideoReformatter(), (64, 48))
    assert out.format.name == "yuv420p" and out is not other
    same = assemble._to_frame(frame, info, "yuv420p", VideoReformatter(), (64, 48))
    assert same is frame and same.pict_type == 0  # no forced frame type
    bigger = assemble._to_frame(frame, info, "yuv420p", VideoReformatter(), (128, 96))
    assert (bigger.width, bigger.height, bigger.format.name) == (128, 96, "yuv420p")


# ---------------------------------------------------------------- upload names hashed once
def test_an_unchanged_input_is_hashed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    import os

    from driver.render import executor

    calls = []
    real = executor.sha256_file
    monkeypatch.setattr(executor, "sha256_file", lambda p: calls.append(p) or real(p))
    path = tmp_path / "in_00001.nut"
    path.write_bytes(b"a" * 1000)
    first = executor.upload_name(path, "chunk")
    assert executor.upload_name(path, "chunk") == first and len(calls) == 1
    path.write_bytes(b"b" * 1000)  # same size, new content
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later modification time
    second = executor.upload_name(path, "chunk")
    assert second != first and len(calls) == 2
    assert second.startswith(real(path)[:16]) and second.endswith("_chunk.nut")
