"""The enhance command's chunks that hold only the interpolated frames: the retime returns
just those (``interpolated_only``), and the frames placed back at the final encode (copies
from the source, the rest from the chunk files) equal a one-chunk retime of the whole clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from anime_pipeline.core import chunkio
from anime_pipeline.core.contracts import MotionLabels
from anime_pipeline.core.interpolate import FlowInterpolator
from anime_pipeline.core.retime import Phase, retime
from anime_pipeline.nodes.motion import AnimeRetime
from driver.enhance import plan as eplan
from driver.enhance.output import INTERPOLATED, output_frames
from tests.unit.test_enhance import LABELS, Blend, labels_of


def test_interpolated_only_returns_exactly_the_interpolated_frames():
    frames = torch.rand(len(LABELS) + 1, 12, 16, 3, generator=torch.Generator().manual_seed(5))
    labels = labels_of(LABELS)
    whole, steps = retime(frames, 24, 60, labels, interpolator=FlowInterpolator())
    only, steps_only = retime(frames, 24, 60, labels, interpolator=FlowInterpolator(), interpolated_only=True)
    rows = [s.k for s in steps if not s.is_copy]
    assert 0 < len(rows) < len(steps) and steps_only == steps
    assert torch.equal(only, whole[rows])
    given = MotionLabels(labels, len(frames))
    out, _, _ = AnimeRetime().retime(frames, 24.0, 60.0, "keep_holds", given, interpolated_only=True)
    assert out.shape[0] == len(rows)


def test_fast_flow_is_one_flow_estimate():
    frames = torch.rand(3, 144, 200, 3, generator=torch.Generator().manual_seed(2))  # long side over 128 px
    labels = labels_of("mm")
    given = MotionLabels(labels, 3)
    fast, _, _ = AnimeRetime().retime(frames, 24.0, 48.0, "keep_holds", given, fast_flow=True)
    one, _ = retime(frames, 24, 48, labels, interpolator=FlowInterpolator(extra_flow_sizes=()))
    two, _, _ = AnimeRetime().retime(frames, 24.0, 48.0, "keep_holds", given)
    assert torch.equal(fast, one) and not torch.equal(fast, two)


@pytest.mark.parametrize("fps_in,fps_out,mode", [(24, 48, "keep_holds"), (16, 24, "smooth"), (24, 30, "keep_holds")])
def test_placed_frames_equal_the_whole_retime(tmp_path, fps_in, fps_out, mode):
    src = np.random.default_rng(1).integers(0, 256, (len(LABELS) + 1, 6, 8, 3), dtype=np.uint8)
    frames = chunkio.to_tensor(src)
    labels = labels_of(LABELS)
    fi, fo = Fraction(fps_in), Fraction(fps_out)
    whole, _ = retime(frames, fi, fo, labels, mode=mode, interpolator=Blend())
    budget = eplan.Budget(1 << 40, 1 << 40, 1, 1, 1, max_frames=5)
    chunks = eplan.make_chunks(labels, len(src), fi, fo, mode, budget, interpolated_only=True)
    records = []
    for c in chunks:  # what the server would return for each chunk
        part, _ = retime(frames[c.src_lo:c.src_hi + 1], fi, fo, labels[c.src_lo:c.src_hi], mode=mode,
                         interpolator=Blend(), phase=Phase(c.src_lo, c.first_out, c.n_out), interpolated_only=True)
        assert part.shape[0] == c.n_rendered
        record = {**c.to_dict(), "status": "done", "file": None}
        if c.n_rendered:
            record["file"] = f"out_{c.index}.nut"
            chunkio.write_chunk(tmp_path / record["file"], chunkio.iter_from_tensor(part, 8), fo)
        records.append(record)
    doc = {"frames_in": len(src), "labels": "".join(x[0] for x in labels), "input": {"fps": str(fi)},
           "key": {"fps_out": str(fo)}, "mode": mode, "rendered": INTERPOLATED, "chunks": records}
    placed = np.stack(list(output_frames(tmp_path, doc, iter(src))))
    n = min(whole.shape[0], eplan.total_outputs(len(src), fi, fo))
    assert np.array_equal(placed, chunkio.from_tensor(whole[:n], 8))


def test_budget_models_the_server_side_of_a_chunk():
    from driver.enhance.probe import VideoProbe

    info = VideoProbe("x.mkv", "matroska", "h264", 1280, 720, Fraction(24), False, 10.0, 0.0, "yuv420p", 8, 1, 1,
                      1, 1, 0)
    px = 1280 * 720
    b = eplan.make_budget(info, 1, 1 << 30, 100 << 20, upscale_on_server=False)
    workers = eplan.retime_workers()
    assert (b.in_frame_bytes, b.out_frame_bytes) == (px * (12 + 3 + 3), px * 12)
    assert b.fixed_bytes == px * (eplan.WORKER_BYTES_PER_PIXEL * workers + eplan.FRAME_CONVERT_BYTES)
    up = eplan.make_budget(info, 2, 1 << 30, 100 << 20, upscale_on_server=True)
    assert up.out_frame_bytes == px * 12 * (4 + 1)  # the upscaled frame and the retimed one it came from
    deep = eplan.make_budget(VideoProbe(**{**info.__dict__, "bits": 10}), 1, 1 << 30, 100 << 20)
    assert deep.in_frame_bytes == px * (12 + 6 + 3)
    labels = labels_of(LABELS * 4)
    chunks = eplan.make_chunks(labels, len(labels) + 1, Fraction(24), Fraction(48), "keep_holds", b,
                               interpolated_only=True)
    assert len(chunks) > 3 and all(b.needs(c.n_src, c.n_rendered) <= b.memory for c in chunks)


def test_the_encode_thread_follows_the_render_and_stops_with_it():
    import threading

    from driver.enhance.output import Encoder, Stopped

    records = [{"status": "done"}, {"status": "pending"}]

    def encode(wait):
        for r in records:
            wait(r)
        return ["ok"], 1.0

    follows = Encoder(encode)
    threading.Timer(0.2, lambda: records[1].update(status="done")).start()
    assert follows.result() == (["ok"], 1.0)
    records[1]["status"] = "pending"
    stopped = Encoder(encode)
    stopped.stop()  # the render failed or was cancelled: the encode is dropped, not left waiting
    with pytest.raises(Stopped):
        stopped.result()
