"""Enhance at scale without a server: the backend's limits size the chunks (RunPod
Serverless request and result, ComfyUI uploads) and a chunk that cannot fit is refused
naming the limit; several inputs and folders on the command line; the work folder's lock;
``enhance.json`` versions; the chunk job satisfies the executors' protocols; a chunk's
report travels inside its file; a file listed under two UI keys is downloaded once."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from anime_pipeline.core import chunkio
from devkit.harness.enhance_media import write_video
from driver.cli import main
from driver.comfy.client import ComfyClient
from driver.enhance import command
from driver.enhance.errors import ChunkTooLarge
from driver.enhance.jobs import ROLE, chunk_attempt, chunk_job
from driver.enhance.limits import WORKFLOW_BYTES, check_fits, chunk_limits, planned_limits
from driver.enhance.plan import Budget, Chunk
from driver.enhance.render import TEMPLATE, ChunkSettings
from driver.farm.backend import FarmOptions
from driver.farm.worker_outputs import RESULT_LIMIT, dropped_outputs
from driver.lock import folder_lock
from driver.render.attempt import Limits
from driver.render.workflow import load_template


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    frames = (np.random.default_rng(1).random((12, 32, 48, 3)) * 255).astype(np.uint8)
    return write_video(tmp_path_factory.mktemp("v") / "small.mkv", frames, Fraction(24))


def run(*args) -> int:
    return main(["enhance", *map(str, args), "--plain"])


def test_limits_pick_the_tightest_and_name_it():
    comfy = Limits(upload_bytes=100 << 20, memory_bytes=8 << 30, where="http://a")
    assert chunk_limits(comfy, memory_budget_gb=None, growth=2.0).upload == 100 << 20
    assert chunk_limits(comfy, memory_budget_gb=None, growth=2.0).memory == 4 << 30  # half the free memory
    assert chunk_limits(comfy, memory_budget_gb=1.0, growth=2.0).memory == 1 << 30
    endpoint = Limits(body_bytes=9_500_000, result_bytes=RESULT_LIMIT, where="RunPod Serverless runpod:x")
    body = chunk_limits(endpoint, memory_budget_gb=None, growth=2.0)
    assert body.upload == (9_500_000 - WORKFLOW_BYTES) * 3 // 4 and "request limit" in body.where
    result = chunk_limits(endpoint, memory_budget_gb=None, growth=8.0)  # 2x frames, 2x scale: results bind
    assert result.upload == int(RESULT_LIMIT * 3 / 4 / 8) and "result limit" in result.where
    both = comfy.tighter(endpoint)
    assert (both.upload_bytes, both.body_bytes, both.memory_bytes) == (100 << 20, 9_500_000, 8 << 30)
    assert planned_limits(FarmOptions(endpoint="runpod:x", endpoint_bucket=True)).result_bytes is None
    assert planned_limits(FarmOptions(servers=["http://a"])).upload_bytes == 100 << 20


def test_a_chunk_that_cannot_fit_names_the_limit():
    budget = Budget(1 << 30, 1 << 20, 1, 1, file_frame_bytes=600_000)
    limits = chunk_limits(Limits(body_bytes=WORKFLOW_BYTES + 1_000_000, where="RunPod Serverless runpod:x"),
                          memory_budget_gb=None, growth=2.0)
    with pytest.raises(ChunkTooLarge, match=r"request limit of RunPod Serverless runpod:x.*0\.75 MB per chunk") as err:
        check_fits("ep01.mkv", budget, limits)
    assert err.value.exit_code == 30 and "ep01.mkv" in str(err.value)
    check_fits("ep01.mkv", Budget(1 << 30, 1 << 20, 1, 1, file_frame_bytes=300_000), limits)  # 2 frames fit


def test_dry_run_sizes_chunks_for_the_backend(small_video, tmp_path, caplog):
    from driver.config import load_config
    from driver.enhance import batch
    from driver.enhance.options import Options

    opts = [Options(small_video, tmp_path / "o.mkv", fps=48, dry_run=True)]
    assert batch.run(opts, FarmOptions(servers=["http://127.0.0.1:9"]), load_config(None)) == 0
    # an endpoint whose requests take less than 2 frames (the smallest chunk) base64: nothing is contacted
    small = FarmOptions(endpoint="runpod:abc", endpoint_base_url="http://127.0.0.1:9",
                        endpoint_payload_bytes=WORKFLOW_BYTES + 100)
    with pytest.raises(ChunkTooLarge, match="request limit of RunPod Serverless runpod:abc"):
        batch.run(opts, small, load_config(None))


def test_several_inputs_need_an_out_dir_and_a_folder_gives_its_videos(small_video, tmp_path, capsys):
    folder = tmp_path / "season"
    folder.mkdir()
    for name in ("ep02.mkv", "ep01.mp4"):
        (folder / name).write_bytes(small_video.read_bytes())
    (folder / "notes.txt").write_text("not a video")
    assert run(folder, "--out", tmp_path / "x.mkv", "--dry-run") == 24  # a folder needs --out-dir
    assert run(small_video, small_video, "--out-dir", tmp_path, "--dry-run") == 24  # the same input twice
    outs = tmp_path / "outs"
    assert run(folder, "--out-dir", outs, "--dry-run") == 24  # no such folder
    outs.mkdir()
    assert run(folder, "--out-dir", outs, "--out", tmp_path / "x.mkv", "--dry-run") == 24
    assert run(folder, "--out-dir", outs, "--fps", "48", "--dry-run") == 0
    text = capsys.readouterr().out
    assert text.index("ep01.mp4 -> ") < text.index("ep02.mkv -> ")  # sorted by name
    assert (outs / "ep01.enhance" / "enhance.json").is_file() and (outs / "ep02.enhance" / "enhance.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(empty, "--out-dir", outs, "--dry-run") == 24


def test_a_second_command_on_the_work_folder_is_refused_naming_the_holder(small_video, tmp_path, caplog):
    out = tmp_path / "o.mkv"
    with folder_lock(out.with_name("o.enhance"), command="driver enhance (the first)"):
        assert run(small_video, "--out", out, "--dry-run") == 25
    assert "the first" in caplog.text


def test_manifest_versions(small_video, tmp_path, caplog):
    out = tmp_path / "o.mkv"
    assert run(small_video, "--out", out, "--fps", "48", "--dry-run") == 0
    path = out.with_name("o.enhance") / command.MANIFEST
    doc = json.loads(path.read_text())
    assert doc["manifest_version"] == command.MANIFEST_VERSION == 3
    assert {"rendered", "source_range"} <= set(doc) and all("n_rendered" in c for c in doc["chunks"])
    assert run(small_video, "--out", out, "--fps", "48", "--dry-run") == 0  # version 3 is reused
    assert json.loads(path.read_text())["created_at"] == doc["created_at"]
    for old in (1, 2):  # older folders (two different version 2s existed) are rendered afresh, logged
        path.write_text(json.dumps({**doc, "manifest_version": old, "created_at": "then"}))
        caplog.clear()
        assert run(small_video, "--out", out, "--fps", "48", "--dry-run") == 0
        again = json.loads(path.read_text())
        assert again["manifest_version"] == 3 and again["created_at"] != "then"
        assert f"manifest_version {old}" in caplog.text and "rendered afresh" in caplog.text
    path.write_text(json.dumps({**doc, "manifest_version": 99}))
    assert run(small_video, "--out", out, "--fps", "48", "--dry-run") == 31
    assert json.loads(path.read_text())["manifest_version"] == 99  # left as it was


def test_the_chunk_job_is_an_executor_attempt():
    from driver.render.attempt import Attempt

    c = Chunk(3, 10, 5, 4, 7, 1, 2)  # 5 outputs, 2 of them interpolated (returned by the server)
    settings = ChunkSettings(Fraction(24), Fraction(48), "keep_holds", 8, (64, 32), (64, 32))
    job = chunk_job("ep01.mkv", "ep01.enhance", c)
    att: Attempt = chunk_attempt(load_template(TEMPLATE), job, c, "ap/x/chunk.mkv", "mmh", settings)
    again = chunk_attempt(load_template(TEMPLATE), job, c, "ap/x/chunk.mkv", "mmh", settings)
    assert (job.id, job.shot, job.frames) == ("ep01.enhance/c00003", "ep01.mkv chunk 3", 2)
    assert list(att.outputs.values()) == [ROLE] and att.prompt == again.prompt and att.prompt_id != again.prompt_id
    assert dropped_outputs(att.prompt, att.outputs) == []  # worker-comfyui returns AP_SaveChunk's file


def test_the_report_travels_in_the_chunk_file(tmp_path):
    path = tmp_path / f"c{chunkio.SUFFIX}"  # NUT keeps container tags
    chunkio.write_chunk(path, iter(np.zeros((2, 8, 8, 3), np.uint8)), Fraction(24), 8, tags={"AP_REPORT": '{"a": 1}'})
    assert chunkio.chunk_tags(path) == {"AP_REPORT": '{"a": 1}'}
    assert len(list(chunkio.iter_chunk(path))) == 2


def test_a_file_listed_under_two_keys_is_one_output():
    ref = {"filename": "c_00001_.mkv", "subfolder": "ap", "type": "output"}
    entry = {"outputs": {"9": {"chunks": [ref], "images": [ref], "reports": ["{}"]}, "3": {"images": [ref]}}}
    refs = ComfyClient.output_files(entry)
    assert [(r["node_id"], r["ui_key"]) for r in refs] == [("9", "chunks"), ("3", "images")]


class _Run:
    """What ChunkProgress reads of a run: the input's name."""

    def __init__(self):
        from types import SimpleNamespace

        self.opts = SimpleNamespace(input=SimpleNamespace(name="ep01.mkv"))


def test_progress_eta_and_the_per_server_summary(caplog):
    import io
    import logging

    from rich.console import Console

    from driver.enhance.progress import ChunkProgress

    caplog.set_level(logging.INFO)
    chunks = [Chunk(i, 10 * i, 10, 5 * i, 5 * i + 5, 0, 10) for i in range(4)]
    run = _Run()
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    progress = ChunkProgress(console)
    progress.start([(run, [(c, c.index == 0) for c in chunks])])
    assert (progress.total, progress.done, progress.eta_s()) == (40, 10, None)
    progress.chunk_done(run, chunks[1], "http://a", 2.0)
    progress.chunk_done(run, chunks[2], "http://b", 3.0)
    assert progress.eta_s() is not None and progress.done == 30
    progress.stop()
    assert "enhance 3/4 chunks" in console.file.getvalue()
    assert "ep01.mkv chunk 2 done on http://b" in caplog.text and "3/4 chunks, ETA" in caplog.text
    assert [(s["server"], s["chunks"], s["busy_s"]) for s in progress.summary()] == [("http://a", 1, 2.0),
                                                                                      ("http://b", 1, 3.0)]
    progress.log_summary()
    assert "server http://a: 1 chunk(s), busy 2.0 s" in caplog.text


def test_preflight_names_the_server_and_the_missing_pack_or_model(small_video, tmp_path):
    from types import SimpleNamespace

    from driver.config import load_config
    from driver.enhance import batch
    from driver.enhance.command import Enhance
    from driver.enhance.options import Options
    from driver.errors import PreflightFailed

    run = Enhance(Options(small_video, tmp_path / "o.mkv", fps=48, scale=2, upscale_model="4x-anime.pth"))
    site = batch._site([run], load_config(None))
    stock = SimpleNamespace(url="http://stock:8188", object_info=lambda: {})
    with pytest.raises(PreflightFailed, match="http://stock:8188") as err:
        site.check(stock)
    assert "AP_LoadChunk does not exist (the anime_pipeline pack is not installed" in str(err.value)
    types = {n["class_type"] for n in batch.samples([run])[0].prompt.values()}
    info = {t: {"input": {"required": {}}} for t in types}
    info["UpscaleModelLoader"] = {"input": {"required": {"model_name": [["other.pth"]]}}}
    with pytest.raises(PreflightFailed, match="model_name '4x-anime.pth' is not on the server") as err:
        site.check(SimpleNamespace(url="http://gpu:8188", object_info=lambda: info))
    assert "http://gpu:8188" in str(err.value)
    assert site.endpoint_problems() == []


def test_final_encodes_take_chunks_in_index_order_whichever_finishes_first():
    import threading
    import time as _time

    from driver.enhance import batch as batch_mod

    lock, active, most = threading.Lock(), [0], [0]

    class FakeRun:
        def __init__(self, n):
            self.records = [{"index": i, "status": "pending"} for i in range(n)]
            self.seen: list[int] = []

        def encode(self, wait):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            for r in self.records:
                wait(r)
                self.seen.append(r["index"])
            with lock:
                active[0] -= 1
            return [], 0.0

    runs = [FakeRun(3) for _ in range(3)]
    encoders = batch_mod._encoders(runs)  # type: ignore[arg-type]
    for run in runs:  # chunks finish in reverse order (e.g. on several servers)
        for r in reversed(run.records):
            _time.sleep(0.02)
            r["status"] = "done"
    assert [e.result() for e in encoders] == [([], 0.0)] * 3
    assert all(run.seen == [0, 1, 2] for run in runs)
    assert most[0] == batch_mod.ENCODES_AT_ONCE == 2  # the third input's encode waited for a turn


def test_a_stopped_render_stops_encodes_waiting_for_their_turn():
    from driver.enhance import batch as batch_mod
    from driver.enhance.output import Stopped

    class Waiting:
        records = [{"status": "pending"}]

        def encode(self, wait):
            for r in self.records:
                wait(r)
            return [], 0.0

    encoders = batch_mod._encoders([Waiting(), Waiting(), Waiting()])  # type: ignore[list-item]
    for e in encoders:
        e.stop()  # returns: the third was waiting for a turn, the others for a chunk
    for e in encoders:
        with pytest.raises(Stopped):
            e.result()
