"""``driver enhance`` on awkward inputs, built at test time, without a server: a corrupt
packet (stop with its time, or ``--skip-errors`` repairs listed), variable frame rate,
odd sizes, a full disk at the final encode, and subtitles an MP4 cannot hold as they are."""

from __future__ import annotations

import errno
import struct
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from devkit.harness.enhance_media import write_video
from driver.cli import main
from driver.enhance import assemble
from driver.enhance.errors import InputUnreadable
from driver.enhance.probe import FrameSource, probe
from driver.errors import DiskFull

N = 12


def frames(w: int = 48, h: int = 32, n: int = N) -> np.ndarray:
    ramp = np.linspace(0, 200, n, dtype=np.float32)[:, None, None, None]
    noise = np.random.default_rng(3).integers(0, 50, (1, h, w, 3)).astype(np.float32)
    return (ramp + noise).astype(np.uint8)


def run(*args) -> int:
    return main(["enhance", *map(str, args), "--plain"])


@pytest.fixture()
def corrupt(tmp_path) -> Path:
    """PNG frames in NUT with frame 5's PNG signature zeroed (a packet no decoder takes)."""
    path = write_video(tmp_path / "corrupt.nut", frames(), Fraction(24), codec="png", pix_fmt="rgb24",
                       audio=False, subtitles=False, options={})
    with av.open(str(path)) as c:
        pos = [p.pos for p in c.demux(video=0) if p.size][5]
    data = bytearray(path.read_bytes())
    data[pos:pos + 8] = bytes(8)
    path.write_bytes(bytes(data))
    return path


def test_a_corrupt_packet_stops_with_its_time(corrupt, tmp_path, caplog):
    with pytest.raises(InputUnreadable, match=r"bad video packet at 0\.208 s"):
        list(FrameSource(probe(corrupt)))
    assert run(corrupt, "--out", tmp_path / "o.mkv", "--dry-run") == 22
    assert "bad video packet at 0.208 s" in caplog.text and "--skip-errors" in caplog.text


def test_skip_errors_repeats_the_last_good_frame_and_lists_the_repair(corrupt, tmp_path):
    source = FrameSource(probe(corrupt), skip_errors=True)
    got = list(source)
    assert len(got) == N and np.array_equal(got[5], got[4]) and not np.array_equal(got[6], got[4])
    assert [r.time_s for r in source.repairs] == [pytest.approx(5 / 24, abs=1e-3)]
    out = tmp_path / "o.mkv"
    assert run(corrupt, "--out", out, "--skip-errors", "--dry-run") == 0
    doc = json.loads((tmp_path / "o.enhance" / "enhance.json").read_text())
    assert [r["time_s"] for r in doc["repairs"]] == [pytest.approx(5 / 24, abs=1e-3)]
    assert doc["frames_in"] == N


def test_variable_frame_rate_is_made_constant_at_the_average_rate(tmp_path, capsys):
    path = tmp_path / "vfr.mkv"
    stamps = [0, 40, 80, 160, 200, 240, 320, 360, 400, 480, 520, 560]  # ms: 12 frames, 25 fps on average
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.time_base = Fraction(1, 1000)
        for t, rgb in zip(stamps, frames(), strict=True):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    info = probe(path)
    assert info.variable_fps and info.fps == Fraction(11 * 1000, 560)
    assert any("variable frame rate" in n for n in info.notes)
    got = list(FrameSource(info))
    assert len(got) == round(info.duration * info.fps)
    assert run(path, "--out", tmp_path / "o.mkv", "--dry-run") == 0
    assert "note: variable frame rate: converted to constant" in capsys.readouterr().out


def _encode(tmp_path: Path, src: Path, target: Path, rgb: np.ndarray) -> list[str]:
    info = probe(src)
    n = len(rgb)
    return assemble.encode(target, info, iter(rgb), n, info.fps, (info.width, info.height),
                           assemble.Span(0, n / info.fps))


def test_odd_sizes_encode_at_full_chroma(tmp_path):
    rgb = frames(33, 21)
    src = write_video(tmp_path / "odd.mkv", rgb, Fraction(24), codec="ffv1", pix_fmt="yuv444p", options={},
                      subtitles=False)
    info = probe(src)
    assert (info.width, info.height) == (33, 21)
    _encode(tmp_path, src, tmp_path / "odd_out.mkv", np.stack(list(FrameSource(info))))
    with av.open(str(tmp_path / "odd_out.mkv")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height, cc.pix_fmt) == (33, 21, "yuv444p")
        assert sum(1 for _ in c.decode(video=0)) == N


def test_a_full_disk_at_the_final_encode_is_disk_full_and_leaves_no_partial_file(tmp_path, monkeypatch):
    src = write_video(tmp_path / "in.mkv", frames(), Fraction(24), subtitles=False)

    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(assemble.os, "replace", no_space)
    target = tmp_path / "full.mkv"
    with pytest.raises(DiskFull, match="no space left"):
        _encode(tmp_path, src, target, np.stack(list(FrameSource(probe(src)))))
    assert not target.exists() and not assemble.temp_path(target).exists()
    assert DiskFull.exit_code == 17


def test_mp4_output_converts_srt_subtitles_to_mov_text(tmp_path):
    src = write_video(tmp_path / "subs.mkv", frames(), Fraction(24))
    warnings = _encode(tmp_path, src, tmp_path / "out.mp4", np.stack(list(FrameSource(probe(src)))))
    assert any("converted to mov_text" in w for w in warnings)
    with av.open(str(tmp_path / "out.mp4")) as c:
        (sub,) = c.streams.subtitles
        assert sub.codec_context.name == "mov_text"
        assert len(c.streams.audio) == 1, warnings  # the audio is carried too
        cues = [(round(float(p.pts * sub.time_base), 3), bytes(p)[2:]) for p in c.demux(sub) if p.size > 2]
    assert cues == [(0.25, b"First line")]  # 12 frames at 24 fps: the second cue (1.0 s) is past the end


def _rotated_mp4(path: Path, rgb: np.ndarray) -> Path:
    """An MP4 whose track matrix says: turn 90 degrees clockwise to display (as phones write them);
    PyAV writes no display matrix, so the track header's matrix is set in the file."""
    write_video(path, rgb, Fraction(24), audio=False, subtitles=False)
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd") - 4
    times = 8 * 3 + 4 + 8 if data[box + 8] == 1 else 4 * 5  # version 1 has 64-bit times
    matrix = box + 8 + 4 + times + 8 + 8  # after the header, times, reserved, layer/group/volume
    struct.pack_into(">9i", data, matrix, 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_a_rotation_flag_is_applied_and_the_output_is_upright(tmp_path):
    rgb = frames(48, 32)
    rgb[:, :8, :8] = 255  # a mark in the top-left corner
    src = _rotated_mp4(tmp_path / "phone.mp4", rgb)
    info = probe(src)
    assert (info.rotation, info.width, info.height) == (270, 32, 48)
    assert any("rotation flag 270 deg applied" in n for n in info.notes)
    with av.open(str(src)) as c:
        stored = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    upright = list(FrameSource(info))
    assert upright[0].shape == (48, 32, 3)
    assert all(np.array_equal(u, np.rot90(s, -1)) for u, s in zip(upright, stored, strict=True))  # clockwise
    assert upright[0][:8, -8:].mean() > 200  # the mark is now top-right
    _encode(tmp_path, src, tmp_path / "upright.mkv", np.stack(upright))
    with av.open(str(tmp_path / "upright.mkv")) as c:
        f = next(c.decode(video=0))
        assert (f.width, f.height, f.rotation or 0) == (32, 48, 0)


def test_a_full_disk_in_the_work_folder_is_disk_full(tmp_path, monkeypatch, caplog):
    from driver.enhance import command

    src = write_video(tmp_path / "in.mkv", frames(), Fraction(24), subtitles=False)

    def no_space(path, *_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(command, "atomic_write_json", no_space)
    assert run(src, "--out", tmp_path / "o.mkv", "--dry-run") == 17
    assert "disk_full" in caplog.text and "enhance.json" in caplog.text
