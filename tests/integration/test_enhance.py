"""``python -m driver enhance`` against a real ComfyUI on CPU, on inputs built at test time
from real WAN clips (three shots joined with hard cuts, the middle one on twos) with a
click track and subtitles (devkit/harness/enhance_media.py)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.retime import plan as retime_plan
from devkit.harness import enhance_media as em
from driver.cli import main
from driver.config import load_config
from driver.enhance import batch, dispatch
from driver.enhance.options import Options
from driver.enhance.output import frames_of
from driver.enhance.probe import FrameSource, probe
from driver.farm.backend import FarmOptions
from driver.farm.errors import NoServerAvailable

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(em.missing_reason() is not None, reason=str(em.missing_reason()))]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("enhance_in")
    return {24: em.build(d / "in24.mkv", Fraction(24)), 16: em.build(d / "in16.mkv", Fraction(16))}


def enhance(url: str, src: Path, out: Path, *args: str) -> int:
    return main(["enhance", str(src), "--out", str(out), "--server", url, "--plain", *args])


def manifest(out: Path) -> dict:
    return json.loads((out.with_name(f"{out.stem}.enhance") / "enhance.json").read_text())


def rendered(out: Path) -> np.ndarray:
    """The frames the final encode got (the rendered chunks with the copies placed, in order)."""
    return np.stack(list(frames_of(out.with_name(f"{out.stem}.enhance"))))


def video_info(path: Path) -> tuple[int, Fraction, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = [f.pts for f in c.decode(s)]
        rate = Fraction(s.average_rate)
        return len(pts), rate, float(pts[-1] * s.time_base + 1 / rate) if pts else 0.0  # the last frame's end


@pytest.mark.parametrize("fps_in,fps_out", [(24, 48), (16, 24)])
def test_frame_count_duration_cuts_holds_audio(comfy, inputs, tmp_path, fps_in, fps_out):
    built = inputs[fps_in]
    out = tmp_path / f"out{fps_out}.mkv"
    assert enhance(comfy.url, built.path, out, "--fps", str(fps_out), "--max-chunk-frames", "9") == 0
    n_in = len(built.frames)
    expected = round(Fraction(n_in * fps_out, fps_in))
    count, rate, seconds = video_info(out)
    assert (count, rate) == (expected, fps_out)
    assert seconds == pytest.approx(n_in / fps_in, abs=1e-3)  # Matroska stores milliseconds
    doc = manifest(out)
    assert len(doc["chunks"]) > 1 and doc["frames_out"] == expected
    # every copied output frame is exactly a decoded source frame; cuts and holds are only copies
    src = np.stack(list(FrameSource(probe(built.path))))
    labels = MotionLabels.from_letters(doc["labels"], n_in).labels
    assert [i for i, lab in enumerate(labels) if lab == "cut"] == list(built.cuts)
    assert {i for i, lab in enumerate(labels) if lab == "hold"} == set(built.holds)
    frames = rendered(out)
    steps = retime_plan(n_in, fps_in, fps_out, labels)
    for s in steps:
        i = int(s.position)
        if i < n_in - 1 and labels[i] in ("cut", "hold"):
            assert s.is_copy, f"output {s.k} at a {labels[i]} is not a copy"
        if s.is_copy:
            assert np.array_equal(frames[s.k], src[s.a]), f"output {s.k} is not an exact copy of source {s.a}"
    assert all(np.array_equal(f, frames[len(steps) - 1]) for f in frames[len(steps):])  # the held last frame
    clicks = em.click_times(out)
    assert len(clicks) == len(built.clicks)
    assert max(abs(a - b) for a, b in zip(clicks, built.clicks, strict=True)) <= 1 / fps_out
    assert em.subtitle_times(out) == em.subtitle_times(built.path)


def test_chunked_equals_one_chunk(comfy, inputs, tmp_path):
    src = inputs[24].path
    assert enhance(comfy.url, src, tmp_path / "many.mkv", "--fps", "48", "--max-chunk-frames", "6") == 0
    assert enhance(comfy.url, src, tmp_path / "one.mkv", "--fps", "48") == 0
    assert len(manifest(tmp_path / "many.mkv")["chunks"]) >= 5
    assert len(manifest(tmp_path / "one.mkv")["chunks"]) == 3  # one per shot
    assert np.array_equal(rendered(tmp_path / "many.mkv"), rendered(tmp_path / "one.mkv"))


def test_clip_trims_video_audio_and_subtitles(comfy, inputs, tmp_path):
    built, out = inputs[24], tmp_path / "clip.mkv"
    assert enhance(comfy.url, built.path, out, "--fps", "48", "--clip", "0.5-1.4") == 0
    first, stop = 12, round(1.4 * 24)  # 0.5 s at 24 fps
    count, _, seconds = video_info(out)
    assert count == (stop - first) * 2 and seconds == pytest.approx((stop - first) / 24, abs=1e-3)
    t0 = first / 24
    clicks = em.click_times(out)
    assert len(clicks) == 1 and abs(clicks[0] - (0.95 - t0)) <= 1 / 48
    assert em.subtitle_times(out) == [(pytest.approx(1.0 - t0, abs=1e-3), b"Second line")]


def test_passthrough_is_exact_and_10_bit_stays_10_bit(comfy, tmp_path):
    frames, _, _ = em.source_frames()
    deep = frames.astype(np.uint16) * 256 + np.arange(frames.shape[2], dtype=np.uint16)[None, None, :, None] % 64
    src = em.write_video(tmp_path / "in10.mkv", deep, Fraction(24), codec="ffv1", pix_fmt="yuv420p10le",
                         options={})
    out = tmp_path / "same.mkv"
    assert enhance(comfy.url, src, out, "--fps", "24") == 0
    info = probe(src)
    decoded = np.stack(list(FrameSource(info)))
    assert decoded.dtype == np.uint16
    got = rendered(out)
    assert got.dtype == np.uint16 and np.abs(got.astype(np.int64) - decoded).max() <= 65535 // 255
    assert np.array_equal(got, decoded)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_killed_server_then_rerun_reuses_finished_chunks(comfy_server_factory, inputs, tmp_path, monkeypatch):
    server = comfy_server_factory()
    out, calls = tmp_path / "resume.mkv", []
    original = dispatch.ChunkProgress.chunk_done

    def done_then_kill(self, run, chunk, *a, **kw):
        original(self, run, chunk, *a, **kw)
        calls.append(chunk.index)
        if len(calls) == 2:
            server.kill()

    monkeypatch.setattr(dispatch.ChunkProgress, "chunk_done", done_then_kill)
    args = ("--fps", "48", "--max-chunk-frames", "8")
    # the one server is a pool of one: it gives up once no server has answered for all_down_timeout_s
    opts = [Options(inputs[24].path, out, fps=48, max_chunk_frames=8)]
    fo = FarmOptions(servers=[server.url], health_interval_s=0.5, down_after=1, all_down_timeout_s=3.0)
    with pytest.raises(NoServerAvailable):
        batch.run(opts, fo, load_config(None))
    first = manifest(out)["chunks"]
    sent = [c["index"] for c in first if c["n_rendered"]]  # a chunk of copies only is never sent
    done = [c["index"] for c in first if c["status"] == "done" and c["n_rendered"]]
    # the pool's threads may finish chunks out of index order: two of the sent chunks are done
    assert len(done) == 2 and set(done) <= set(sent) and not out.exists()
    calls.clear()
    server2 = comfy_server_factory()
    assert enhance(server2.url, inputs[24].path, out, *args) == 0
    assert sorted(calls) == [i for i in sent if i not in done]
    second = manifest(out)["chunks"]
    assert [second[i]["finished_at"] for i in done] == [first[i]["finished_at"] for i in done]
    count, _, _ = video_info(out)
    assert count == manifest(out)["frames_out"]


def test_injected_broken_interpolation_is_replaced_and_counted(comfy_server_factory, inputs, tmp_path):
    server = comfy_server_factory()
    client = server.client()
    client.wait_for(client.queue_prompt({"1": {"class_type": "AP_TestBreakInterpolation", "inputs": {"count": 2}}}))
    out = tmp_path / "guarded.mkv"
    assert enhance(server.url, inputs[24].path, out, "--fps", "48") == 0
    doc = manifest(out)
    replaced = [k for c in doc["chunks"] for k in c["report"]["replaced"]]
    assert len(replaced) == 2
    # each replaced frame is a copy of the nearer source (position k / 2: k odd sits at 1/2: the later one)
    src = np.stack(list(FrameSource(probe(inputs[24].path))))
    frames = rendered(out)
    for c in doc["chunks"]:
        for k_local in c["report"]["replaced"]:
            k = c["first_out"] + k_local
            assert np.array_equal(frames[k], src[k // 2 + 1])
    assert sum(c["report"]["interpolated"] for c in doc["chunks"]) == \
        sum(c["interpolated"] for c in doc["chunks"]) - 2


def test_ctrl_c_keeps_finished_chunks_and_the_rerun_continues(comfy, inputs, tmp_path, monkeypatch):
    out, calls = tmp_path / "cancelled.mkv", []
    original = dispatch.Dispatch._attempt

    def attempt_then_interrupt(self, run, chunk, *a, **kw):
        calls.append(chunk.index)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second chunk renders
        return original(self, run, chunk, *a, **kw)

    monkeypatch.setattr(dispatch.Dispatch, "_attempt", attempt_then_interrupt)
    args = ("--fps", "48", "--max-chunk-frames", "8")
    assert enhance(comfy.url, inputs[24].path, out, *args) == 130
    first = manifest(out)["chunks"]
    sent = [c["index"] for c in first if c["n_rendered"]]
    finished = {c["index"]: c["finished_at"] for c in first if c["status"] == "done" and c["n_rendered"]}
    assert len(finished) == 1 and calls[1] not in finished and not out.exists()
    assert not list(tmp_path.glob(".cancelled.partial*"))  # the final encode, started beside, is dropped
    rerun: list[int] = []
    monkeypatch.setattr(dispatch.Dispatch, "_attempt", lambda self, run, chunk, *a, **kw: rerun.append(chunk.index)
                        or original(self, run, chunk, *a, **kw))
    assert enhance(comfy.url, inputs[24].path, out, *args) == 0
    assert sorted(rerun) == [i for i in sent if i not in finished]
    second = manifest(out)["chunks"]
    assert {i: second[i]["finished_at"] for i in finished} == finished
    assert video_info(out)[0] == manifest(out)["frames_out"]
