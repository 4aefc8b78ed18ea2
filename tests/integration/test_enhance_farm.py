"""``driver enhance`` at scale against real CPU ComfyUI servers: two inputs in one command
over a pool of three servers, one killed while it renders a chunk (every chunk done
exactly once, the frames identical to a one-server run, a rerun renders nothing); RunPod
Serverless through the worker-comfyui stand-in with chunks sized for the request limit,
and a limit no chunk fits (refused before anything is sent, naming the limit); RunPod
pods through the RunPod API stand-in, Ctrl-C mid-run stopping every pod and the rerun
finishing the rest. Inputs are the enhance tests' tiny clips (192x112)."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests

from devkit.farm_helpers import history_size, kill_first_busy
from devkit.harness import enhance_media as em
from driver.comfy.client import ComfyClient
from driver.config import load_config
from driver.enhance import batch
from driver.enhance.options import Options
from driver.enhance.output import frames_of
from driver.farm.backend import FarmOptions

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(em.missing_reason() is not None, reason=str(em.missing_reason()))]

KEY = "rpa_ENHANCE_FARM_TEST_KEY_3"
CHUNK = 6  # --max-chunk-frames: several chunks per shot


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("enhance_farm_in")
    return [em.build(d / "a24.mkv", Fraction(24)).path, em.build(d / "b16.mkv", Fraction(16)).path]


def opts_for(srcs: list[Path], out_dir: Path, **kw) -> list[Options]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [Options(p, out_dir / p.name, fps=48, max_chunk_frames=CHUNK, **kw) for p in srcs]


def enhance(srcs: list[Path], out_dir: Path, fo: FarmOptions, **kw) -> int:
    return batch.run(opts_for(srcs, out_dir, **kw), fo, load_config(None))


def manifest(out: Path) -> dict:
    return json.loads((out.with_name(f"{out.stem}.enhance") / "enhance.json").read_text())


def rendered(out: Path) -> np.ndarray:
    """The frames the final encode got: the returned chunks' frames with the copies placed from the source."""
    return np.stack(list(frames_of(out.with_name(f"{out.stem}.enhance"))))


def decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


@pytest.fixture(scope="module")
def reference(comfy, inputs, tmp_path_factory):
    """Both inputs, one command, one server: the frames every farm run must give."""
    out_dir = tmp_path_factory.mktemp("enhance_ref")
    assert enhance(inputs, out_dir, FarmOptions(servers=[comfy.url])) == 0
    return {p.name: (rendered(out_dir / p.name), decoded(out_dir / p.name)) for p in inputs}


def _chunk_prompts(url: str, run_marker: str) -> list[str]:
    """Prompt ids in ``url``'s history whose Chunk In loads a file of this run."""
    history = requests.get(f"{url}/history", timeout=10).json()
    return [pid for pid, e in history.items()
            if any(str(n.get("inputs", {}).get("chunk", "")).startswith(run_marker) for n in e["prompt"][2].values())]


def test_two_inputs_on_three_servers_one_killed_mid_chunk(comfy, comfy_server_factory, inputs, reference, tmp_path):
    victims = [comfy_server_factory(), comfy_server_factory()]
    urls = [comfy.url] + [v.url for v in victims]
    fo = FarmOptions(servers=urls, health_interval_s=0.5, down_after=1, lost_after_s=2.0, all_down_timeout_s=60.0)
    out_dir = tmp_path / "out"
    with kill_first_busy(victims) as killed:
        assert enhance(inputs, out_dir, fo) == 0
    assert killed, "no extra server ever ran a chunk"
    dead = killed[0].url
    docs = {p.name: manifest(out_dir / p.name) for p in inputs}
    everything = [c for d in docs.values() for c in d["chunks"]]
    assert all(c["status"] == "done" for c in everything)
    chunks = [c for c in everything if c["n_rendered"]]  # a chunk of copies only is never sent
    moved = [c for c in chunks if c["attempts"] == 2]
    assert len(moved) == 1 and moved[0]["server"] != dead  # the killed server's chunk, rendered elsewhere
    assert all(c["attempts"] == 1 for c in chunks if c is not moved[0])
    assert len({c["server"] for c in chunks}) >= 2  # the work was spread
    # rendered exactly once: each live server's history holds exactly the chunks recorded for it
    marker = f"ap/{batch.run_id([_Run(out_dir / p.name) for p in inputs])}/"
    for url in urls:
        if url != dead:
            got = sorted(_chunk_prompts(url, marker))
            assert got == sorted(c["prompt_id"] for c in chunks if c["server"] == url), url
    for p in inputs:  # frame for frame what one server made
        ref_chunks, ref_out = reference[p.name]
        assert np.array_equal(rendered(out_dir / p.name), ref_chunks)
        assert np.array_equal(decoded(out_dir / p.name), ref_out)
    assert docs[inputs[0].name]["manifest_version"] == 3
    assert {s["server"] for s in docs[inputs[0].name]["servers"]} <= set(urls)

    alive = [u for u in urls if u != dead]
    before = {u: history_size(u) for u in alive}
    assert enhance(inputs, out_dir, FarmOptions(servers=alive), overwrite=True) == 0  # rerun: nothing to render
    assert {u: history_size(u) for u in alive} == before


class _Run:
    """What batch.run_id reads of a run: its work folder."""

    def __init__(self, out: Path):
        self.work = out.with_name(f"{out.stem}.enhance")


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)


def _limit(src: Path, frames: int) -> int:
    """A /run body limit that fits a chunk file of ``frames`` source frames (as the plan estimates it)."""
    from driver.enhance.limits import WORKFLOW_BYTES
    from driver.enhance.plan import chunk_file_bytes
    from driver.enhance.probe import probe

    return WORKFLOW_BYTES + -(-4 * frames * chunk_file_bytes(probe(src)) // 3) + 16


def test_serverless_chunks_sized_for_the_request_limit_and_one_that_cannot_fit(comfy, inputs, reference, tmp_path,
                                                                                 key_env):
    from devkit.standins.worker_comfyui import WorkerComfyStandIn
    from driver.enhance.errors import ChunkTooLarge

    src = inputs[0]
    with WorkerComfyStandIn(comfy.url, api_key=KEY) as standin:
        fo = FarmOptions(endpoint=f"runpod:{standin.endpoint_id}", endpoint_base_url=standin.base_url,
                         endpoint_slots=2, health_interval_s=1.0, endpoint_payload_bytes=_limit(src, 3))
        assert enhance([src], tmp_path / "sized", fo) == 0
        doc = manifest(tmp_path / "sized" / src.name)
        sent_chunks = [c for c in doc["chunks"] if c["n_rendered"]]  # a chunk of copies only is never sent
        assert len(standin.runs) == len(sent_chunks)  # one /run per chunk, none twice
        assert max(len(json.dumps(body)) for body in standin.runs) <= fo.endpoint_payload_bytes
        assert max(c["src_hi"] - c["src_lo"] + 1 for c in doc["chunks"]) <= 3 < CHUNK
        assert {c["server"] for c in sent_chunks} == {f"runpod:{standin.endpoint_id}"}
        assert np.array_equal(rendered(tmp_path / "sized" / src.name), reference[src.name][0])
        # the retime's counts came back inside each chunk file (worker-comfyui returns files only)
        assert all(c["report"]["interpolated"] + len(c["report"]["replaced"]) == c["interpolated"]
                   for c in sent_chunks)

        sent = len(standin.runs)
        with pytest.raises(ChunkTooLarge) as err:  # 2 source frames, the smallest chunk, do not fit
            enhance([src], tmp_path / "tiny", replace(fo, endpoint_payload_bytes=_limit(src, 1)))
        assert err.value.exit_code == 30 and "request limit of RunPod Serverless" in str(err.value)
        assert len(standin.runs) == sent  # refused before anything was sent
    assert KEY not in (tmp_path / "sized" / f"{src.stem}.enhance" / "enhance.json").read_text()


def _pod_options(standin, **kw) -> FarmOptions:
    from devkit.standins.runpod_api import IMAGE
    from driver.farm.runpod_api import PodSpec
    from driver.farm.runpod_pods import TCP_TEMPLATE

    return FarmOptions(farm="runpod", pods=2, pod=PodSpec(image=IMAGE), runpod_api_url=standin.api_url,
                       pod_url_template=TCP_TEMPLATE, pod_poll_s=0.1, health_interval_s=1.0, pod_ready_timeout_s=30.0,
                       **kw)


def test_pods_ctrl_c_stops_every_pod_and_the_rerun_finishes(comfy, inputs, reference, tmp_path, key_env,
                                                             monkeypatch):
    pytest.importorskip("runpod")
    from devkit.standins.runpod_api import RunPodApiStandIn

    port = urlparse(comfy.url).port
    backends = [("127.0.0.1", port), ("localhost", port)]  # two pods on the one real server
    original, fired = ComfyClient.queue_prompt, []

    def queue_then_interrupt(self, *args, **kw):
        pid = original(self, *args, **kw)
        if len(fired) == 1:  # Ctrl-C while the second chunk runs (raised in its thread: see test_farm_pods)
            fired.append(pid)
            raise KeyboardInterrupt
        fired.append(pid)
        return pid

    src, out_dir = inputs[0], tmp_path / "pods"
    monkeypatch.setattr(ComfyClient, "queue_prompt", queue_then_interrupt)
    with RunPodApiStandIn(api_key=KEY, backends=backends) as standin:
        with pytest.raises(KeyboardInterrupt):
            enhance([src], out_dir, _pod_options(standin))
        assert len(standin.pods) == 2 and not standin.live()  # every pod stopped
    first = manifest(out_dir / src.name)["chunks"]
    assert not (out_dir / src.name).exists()
    monkeypatch.setattr(ComfyClient, "queue_prompt", original)
    with RunPodApiStandIn(api_key=KEY, backends=backends) as standin:
        assert enhance([src], out_dir, _pod_options(standin)) == 0
        assert not standin.live()
    second = manifest(out_dir / src.name)["chunks"]
    kept = [c for c in first if c["status"] == "done"]
    assert all(second[c["index"]]["finished_at"] == c["finished_at"] for c in kept)  # not rendered again
    assert {c["server"] for c in second if c["n_rendered"]} <= {f"http://{h}:{p}" for h, p in backends}
    assert np.array_equal(rendered(out_dir / src.name), reference[src.name][0])
