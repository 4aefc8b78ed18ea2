"""A pool of real CPU ComfyUI servers: the demo storyboard renders across them; one
server is killed while it runs a job, and every shot still completes exactly once in the
manifest, outputs hash-verified; a rerun submits nothing; a server without the pack is
left out with a message naming the image to use."""

from __future__ import annotations

import pytest
import requests

from devkit.farm_helpers import assert_complete_and_verified, attempts, farm_run, history_size, kill_first_busy
from driver.farm.backend import FarmOptions
from driver.farm.images import POD_IMAGE

pytestmark = pytest.mark.integration


def test_demo_across_servers_survives_a_killed_server_and_resumes(comfy, comfy_server_factory, tmp_path):
    victims = [comfy_server_factory(), comfy_server_factory()]
    urls = [comfy.url] + [v.url for v in victims]
    fo = FarmOptions(servers=urls, health_interval_s=0.5, down_after=1, lost_after_s=2.0, all_down_timeout_s=60.0)
    run_dir = tmp_path / "run"
    with kill_first_busy(victims) as killed:
        result, manifest = farm_run(run_dir, fo)
    assert killed, "no extra server ever ran a job"
    dead = killed[0].url
    assert not result.failures, result.failures
    assert_complete_and_verified(manifest, run_dir, list(manifest["shots"]))
    done = [(jid, att) for _s, jid, _j, att in attempts(manifest) if att["status"] == "done"]
    assert len({jid for jid, _ in done}) == len(done)  # every job done exactly once
    assert all(att["server"] in urls and att["server"] != dead for _jid, att in done)
    moved = [att for _jid, att in done if att["prompt_id"].endswith("-r2")]
    assert moved, "the killed server's job was not resubmitted elsewhere"
    used = {att["server"] for _jid, att in done}
    assert len(used) >= 2  # the work was spread

    alive = [u for u in urls if u != dead]
    before = {u: history_size(u) for u in alive}
    again, _ = farm_run(run_dir, fo)  # the dead server is still listed: preflight leaves it out
    assert again.rendered == 0 and not again.failures
    assert {u: history_size(u) for u in alive} == before


def test_a_server_without_the_pack_is_left_out_naming_the_image(comfy, comfy_server_factory, tmp_path, caplog):
    base = tmp_path / "stock"
    (base / "custom_nodes").mkdir(parents=True)
    # a plain file where the harness would link the pack: ComfyUI skips it, the harness keeps it
    (base / "custom_nodes" / "anime_pipeline").write_text("not a pack: this server is a stock ComfyUI\n")
    stock = comfy_server_factory(base, with_test_nodes=False)
    assert "AP_HeldFramePush" not in requests.get(f"{stock.url}/object_info", timeout=30).json()
    fo = FarmOptions(servers=[stock.url, comfy.url], health_interval_s=1.0)
    result, manifest = farm_run(tmp_path / "run", fo, only=["S01T01"])  # a held push: AP_HeldFramePush
    assert not result.failures
    assert {att["server"] for *_x, att in attempts(manifest)} == {comfy.url}
    assert POD_IMAGE in caplog.text and stock.url in caplog.text and "anime_pipeline pack" in caplog.text
