"""``driver enhance`` without a server: lossless chunks, the chunk plan and the retime's
phase (chunked == whole), labels given to the gate, options and the command's errors."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from anime_pipeline.core import chunkio
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.retime import Phase, phase_positions, plan, retime
from anime_pipeline.core.validate import InputError
from anime_pipeline.nodes.motion import AnimeRetime, MotionGate
from devkit.harness.enhance_media import write_video
from driver.cli import main
from driver.enhance import plan as eplan
from driver.enhance.assemble import padded
from driver.enhance.options import clip_frames, parse_time
from driver.enhance.probe import probe

LABELS = tuple("mmmhmhmcmmhhmmmmcmmm")  # letters of 21 frames: cuts after 7 and 16


def labels_of(letters) -> tuple[str, ...]:
    return MotionLabels.from_letters("".join(letters), len(letters) + 1).labels


class Blend:
    """A deterministic stand-in interpolator: (1 - t) a + t b."""

    name = "blend"

    def interpolate(self, a, b, ts, out=None):
        out = np.empty((len(ts), *a.shape), np.float32) if out is None else out
        for j, t in enumerate(ts):
            out[j] = (1 - t) * a + t * b
        return out


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("bits", [8, 16])
def test_chunk_files_are_lossless(tmp_path, bits, raw):
    dtype = np.uint8 if bits == 8 else np.uint16
    rng = np.random.default_rng(bits)
    frames = rng.integers(0, np.iinfo(dtype).max + 1, (5, 18, 22, 3), dtype=dtype)
    path = tmp_path / "c.nut"
    assert chunkio.write_chunk(path, iter(frames), Fraction(24000, 1001), bits, raw=raw) == 5
    back, fps, got_bits = chunkio.read_chunk(path)
    assert np.array_equal(back, frames) and got_bits == bits and fps == Fraction(24000, 1001)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == ("rawvideo" if raw else chunkio.DEPTHS[bits][2])
    assert np.array_equal(chunkio.from_tensor(chunkio.to_tensor(frames), bits), frames)  # through an IMAGE
    assert not list(tmp_path.glob("*.partial"))


def test_to_tensor_is_the_exact_division():
    """Every 8-bit value becomes the correctly rounded float32 of u / 255 (as numpy divides)."""
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3).repeat(2, axis=0)
    expected = np.divide(frames, np.float32(255), dtype=np.float32)
    assert np.array_equal(chunkio.to_tensor(frames).numpy(), expected)
    assert np.array_equal(chunkio.to_tensor(list(frames)).numpy(), expected)


def test_chunk_refuses_wrong_dtype(tmp_path):
    with pytest.raises(ValueError, match="expected uint8"):
        chunkio.write_chunk(tmp_path / "c.mkv", iter([np.zeros((4, 4, 3), np.float32)]), 24, 8)
    assert not (tmp_path / "c.mkv").exists()


@pytest.mark.parametrize("fps_in,fps_out,mode", [(24, 48, "keep_holds"), (16, 24, "keep_holds"),
                                                 (16, 24, "smooth"), (24, 30, "smooth"), (30, 24, "keep_holds"),
                                                 (24000 / 1001, 60, "keep_holds")])
@pytest.mark.parametrize("max_frames", [4, 5, 8])  # smooth mode here needs up to 4 (a drawing held 3 frames)
def test_chunked_retime_equals_whole(fps_in, fps_out, mode, max_frames):
    frames = torch.rand(len(LABELS) + 1, 6, 8, 3, generator=torch.Generator().manual_seed(3))
    labels = labels_of(LABELS)
    fi, fo = Fraction(fps_in).limit_denominator(1001), Fraction(fps_out)
    whole, _ = retime(frames, fi, fo, labels, mode=mode, interpolator=Blend())
    budget = eplan.Budget(1 << 40, 1 << 40, 1, 1, 1, max_frames=max_frames)
    chunks = eplan.make_chunks(labels, len(frames), fi, fo, mode, budget)
    parts = []
    for c in chunks:
        assert c.n_src <= max_frames
        inner = labels[c.src_lo + 1:c.src_hi - 1]  # a chunk may carry one frame over a cut, never more
        assert "cut" not in inner, f"chunk {c} spans a cut"
        out, _ = retime(frames[c.src_lo:c.src_hi + 1], fi, fo, labels[c.src_lo:c.src_hi], mode=mode,
                        interpolator=Blend(), phase=Phase(c.src_lo, c.first_out, c.n_out))
        assert out.shape[0] == c.n_out
        parts.append(out)
    assert [c.first_out for c in chunks] == list(np.cumsum([0] + [c.n_out for c in chunks[:-1]]))
    n = min(whole.shape[0], eplan.total_outputs(len(frames), fi, fo))
    assert torch.equal(torch.cat(parts), whole[:n])


def test_total_outputs_keep_the_duration():
    assert eplan.total_outputs(38, Fraction(24), Fraction(48)) == 76
    assert eplan.total_outputs(38, Fraction(16), Fraction(24)) == 57
    assert eplan.total_outputs(5, Fraction(2), Fraction(1)) == 3  # 2.5 rounds half up
    assert eplan.total_outputs(1001, Fraction(24000, 1001), Fraction(24)) == 1002


def test_phase_positions():
    assert phase_positions(4, 24, 48) == [Fraction(k, 2) for k in range(7)]
    assert phase_positions(4, 24, 48, Phase(10, 21, 3)) == [Fraction(1, 2), Fraction(1), Fraction(3, 2)]
    with pytest.raises(ValueError, match="before this clip's first frame"):
        phase_positions(4, 24, 48, Phase(10, 19))
    assert [s.k for s in plan(4, 24, 48, labels_of("mmm"), phase=Phase(0, 2, 0))] == list(range(5))


def test_retime_node_phase_inputs():
    frames = torch.rand(6, 4, 4, 3)
    labels = MotionLabels.from_letters("mmhmm", 6)
    out, _, summary = AnimeRetime().retime(frames, 24.0, 48.0, "keep_holds", labels, frame_offset=2,
                                           output_offset=5, max_outputs=4)
    assert out.shape[0] == 4 and json.loads(summary)["frames_out"] == 4
    with pytest.raises(InputError, match="output_offset"):
        AnimeRetime().retime(frames, 24.0, 48.0, "keep_holds", labels, frame_offset=4, output_offset=1)


def test_gate_takes_given_labels():
    frames = torch.rand(5, 8, 8, 3)
    labels, summary = MotionGate().gate(frames, 5.0, 0.63, 3.5, labels_given="m h\nc m")
    assert labels.labels == ("motion", "hold", "cut", "motion") and json.loads(summary)["cuts"] == [2]
    assert labels.letters() == "mhcm"
    for bad, why in (("mhc", "3 label letters for 5 frames"), ("mhxm", "unknown label letter")):
        with pytest.raises(InputError, match=why):
            MotionGate().gate(frames, 5.0, 0.63, 3.5, labels_given=bad)


def test_padded_holds_the_last_frame():
    a, b = np.zeros(1), np.ones(1)
    assert [x[0] for x in padded(iter([a, b]), 4)] == [0, 1, 1, 1]
    assert [x[0] for x in padded(iter([a, b, a]), 2)] == [0, 1]


def test_parse_time():
    assert parse_time("00:10:00") == 600 and parse_time("1:02.5") == 62.5 and parse_time("3.25") == 3.25


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    frames = (np.random.default_rng(0).random((12, 32, 48, 3)) * 255).astype(np.uint8)
    return write_video(tmp_path_factory.mktemp("v") / "small.mkv", frames, Fraction(24))


def test_clip_frames(small_video):
    info = probe(small_video)
    assert clip_frames("0.25-0.5", info) == (6, 12)
    with pytest.raises(Exception, match="ends after the end"):
        clip_frames("0.1-0.6", info)
    with pytest.raises(Exception, match="starts after the end"):
        clip_frames("0.6-0.9", info)


def run(*args) -> int:
    return main(["enhance", *map(str, args), "--plain"])


def test_errors_get_their_exit_codes(small_video, tmp_path, caplog):
    text = tmp_path / "notes.mkv"
    text.write_text("not a video")
    assert run(text, "--out", tmp_path / "o.mkv", "--dry-run") == 22
    audio_only = tmp_path / "audio.mkv"
    with av.open(str(audio_only), "w") as out:
        s = out.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    assert run(audio_only, "--out", tmp_path / "o.mkv", "--dry-run") == 22
    assert "no video stream" in caplog.text
    assert run(tmp_path / "missing.mkv", "--out", tmp_path / "o.mkv") == 22
    assert run(small_video, "--out", small_video, "--overwrite") == 23
    exists = tmp_path / "exists.mkv"
    exists.write_bytes(b"x")
    assert run(small_video, "--out", exists) == 23 and exists.read_bytes() == b"x"
    assert run(small_video, "--out", tmp_path / "o.mkv", "--clip", "0.2-9", "--dry-run") == 24
    assert run(small_video, "--out", tmp_path / "o.avi", "--dry-run") == 24
    assert run(small_video, "--out", tmp_path / "o.mkv", "--scale", "7", "--dry-run") == 24


def test_dry_run_prints_the_plan_without_a_server(small_video, tmp_path, capsys):
    out = tmp_path / "o.mkv"
    assert run(small_video, "--out", out, "--fps", "48", "--scale", "2", "--dry-run",
               "--server", "http://127.0.0.1:9") == 0
    text = capsys.readouterr().out
    assert "12 frames at 24.000 fps -> 24 frames at 48.000 fps" in text and "96x64" in text
    assert "lanczos resize" in text and "chunk 0:" in text
    assert not out.exists()


class BreaksOnePair(Blend):
    """Blends, except between ``pair``: noise there (a broken interpolation)."""

    def __init__(self, pair):
        self.pair = pair

    def interpolate(self, a, b, ts, out=None):
        out = super().interpolate(a, b, ts, out)
        if np.array_equal(a, self.frames[self.pair[0]]) and np.array_equal(b, self.frames[self.pair[1]]):
            out[:] = np.random.default_rng(0).random(out.shape, dtype=np.float32)
        return out


def test_bad_mid_frame_is_replaced_and_counted():
    from anime_pipeline.core.retime import GUARD_THRESHOLD

    # a smooth ramp: blends between its frames are good in-betweens
    ramp = torch.linspace(0, 1, 6)[:, None, None, None].expand(6, 16, 16, 3).contiguous()
    frames = ramp * torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    broken = BreaksOnePair((2, 3))
    broken.frames = frames.numpy()
    labels = labels_of("mmmmm")
    out, steps = retime(frames, 24, 48, labels, interpolator=broken, guard=GUARD_THRESHOLD)
    assert [s.k for s in steps if s.replaced] == [5]  # position 2.5: the pair 2 -> 3
    assert torch.equal(out[5], frames[3]) and steps[5].is_copy and steps[5].a == 3
    good, _ = retime(frames, 24, 48, labels, interpolator=Blend(), guard=GUARD_THRESHOLD)
    assert torch.equal(torch.cat([out[:5], out[6:]]), torch.cat([good[:5], good[6:]]))
    off, steps_off = retime(frames, 24, 48, labels, interpolator=broken)
    assert not any(s.replaced for s in steps_off) and not torch.equal(off[5], frames[3])
    summary = AnimeRetime().retime(frames, 24.0, 48.0, "keep_holds", MotionLabels(labels, 6),
                                   fallback_threshold=GUARD_THRESHOLD)[2]
    assert json.loads(summary)["replaced"] == []  # the real interpolator on a ramp: nothing replaced


def test_every_chunk_has_two_source_frames():
    # 24 -> 12 with a one-frame budget per output: each chunk would be a single frame
    labels = labels_of("mmcmmcm")
    budget = eplan.Budget(1 << 40, 1 << 40, 1, 1, 1, max_frames=2)
    chunks = eplan.make_chunks(labels, 8, Fraction(24), Fraction(12), "keep_holds", budget)
    assert all(c.n_src == 2 for c in chunks) and chunks[0].src_lo == 0
    frames = torch.rand(8, 4, 4, 3)
    whole, _ = retime(frames, 24, 12, labels, interpolator=Blend())
    parts = [retime(frames[c.src_lo:c.src_hi + 1], 24, 12, labels[c.src_lo:c.src_hi], interpolator=Blend(),
                    phase=Phase(c.src_lo, c.first_out, c.n_out))[0] for c in chunks]
    assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(Exception, match="at least 2"):
        eplan.make_chunks((), 1, Fraction(24), Fraction(48), "keep_holds", budget)
