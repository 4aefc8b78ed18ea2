"""Farm odds and ends: key resolution and redaction, per-backend estimates, the farm CLI
(parsing, ``farm status`` / ``farm down`` against the API stand-in), option checks,
and the farm error table."""

from __future__ import annotations

import argparse
import logging

import pytest

from driver.config import load_config
from driver.errors import DriverError, ExecutionFailed, OutputMissing, PreflightFailed, PromptRejected
from driver.farm import estimate, redact
from driver.farm.backend import FarmOptions, pod_prefix
from driver.farm.errors import FARM_ERROR_CLASSES
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard

EP1 = REPO_ROOT / "storyboards" / "storyboard_ep_001.json"


def test_api_key_from_env_then_sdk_config_and_always_masked(tmp_path, caplog):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[default]\napi_key = "rpa_FROMFILE_123456"\n')
    env = {"RUNPOD_API_KEY": " rpa_FROMENV_123456 "}
    assert redact.resolve_api_key(env=env, config_path=cfg) == "rpa_FROMENV_123456"
    assert redact.resolve_api_key(env={}, config_path=cfg) == "rpa_FROMFILE_123456"
    assert redact.resolve_api_key(env={}, config_path=tmp_path / "none.toml") is None
    assert redact.redact("key rpa_FROMFILE_123456 here") == "key [REDACTED] here"
    redact.install_log_redaction()
    caplog.set_level(logging.INFO)
    logging.getLogger("anything").info("sending %s", "rpa_FROMENV_123456")
    try:
        raise ValueError("bad key rpa_FROMENV_123456")
    except ValueError:
        logging.getLogger("anything").exception("failed")
    assert "rpa_FROM" not in caplog.text and "traceback withheld" in caplog.text


def test_short_values_are_not_treated_as_secrets():
    redact.add_secret("abc")
    assert redact.redact("abc") == "abc"


def test_estimates_per_backend_for_the_example_episode():
    sb, cfg = load_storyboard(EP1), load_config(None)
    jobs = make_plan(sb, cfg).jobs
    rows = {r.backend.split(" ")[0]: r for r in estimate.table(jobs, n_servers=3, workers=4)}
    total = sum(j.estimate_s for j in jobs)
    assert rows["servers"].gpu_s == pytest.approx(total) and rows["servers"].cost_usd is None
    assert rows["servers"].wall_s < total  # three servers in parallel
    assert rows["servers"].wall_s >= max(j.estimate_s for j in jobs)
    assert rows["pods"].gpu_s > total and rows["pods"].cost_usd > 0  # pods bill boot and idle too
    assert rows["serverless"].gpu_s > total and rows["serverless"].cost_usd == pytest.approx(
        rows["serverless"].gpu_s * estimate.SERVERLESS_USD_PER_S["ADA_24"])
    text = estimate.format_table(list(rows.values()))
    assert "serverless (ADA_24)" in text and "$" in text
    one = estimate.servers(jobs, 1)
    assert one.wall_s >= total  # one server: everything in a row (plus per-job overhead)


def test_farm_options_are_checked():
    assert FarmOptions(servers=["http://a"]).local_fallback()  # a pool of one: the local ComfyUI may stand in
    assert not FarmOptions(servers=["http://a", "http://b"]).local_fallback()
    assert not FarmOptions(endpoint="runpod:x").local_fallback() and not FarmOptions(farm="runpod").local_fallback()
    bad = FarmOptions(endpoint="runpod:x", servers=["http://a"], max_cost_usd=0, farm="aws")
    assert len(bad.problems()) == 3
    assert pod_prefix("LEV-EP001-1a2b3c4d") == "ap-lev-ep001-1a2b3c4d"


def test_every_farm_error_has_a_stable_code_and_keeps_the_drivers_handling():
    assert len(FARM_ERROR_CLASSES) == len({c.code for c in FARM_ERROR_CLASSES.values()})
    shot_level = (PromptRejected, ExecutionFailed, OutputMissing)
    codes = {code for code, cls in FARM_ERROR_CLASSES.items() if issubclass(cls, shot_level)}
    assert codes == {"payload_too_large", "serverless_failed", "serverless_timeout", "serverless_cancelled",
                     "serverless_no_output", "serverless_submit_unknown"}
    assert issubclass(FARM_ERROR_CLASSES["pack_missing"], PreflightFailed)
    assert all(issubclass(c, DriverError) and c.exit_code for c in FARM_ERROR_CLASSES.values())


def _cli():
    from driver.farm import cli
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run")
    r.add_argument("storyboard")
    cli.add_run_options(r)
    cli.add_farm_command(sub, argparse.ArgumentParser(add_help=False))
    return p, cli


def test_run_options_parse_into_farm_options():
    p, cli = _cli()
    args = p.parse_args(["run", "sb.json", "--farm", "runpod", "--pods", "3", "--gpu-type", "NVIDIA L40S",
                         "--network-volume", "vol1", "--terminate", "--max-cost-usd", "12.5"])
    fo = cli.options_from_args(args, [])
    assert (fo.farm, fo.pods, fo.pod.gpu_type, fo.pod.network_volume_id, fo.terminate, fo.max_cost_usd) == \
        ("runpod", 3, "NVIDIA L40S", "vol1", True, 12.5)
    args = p.parse_args(["run", "sb.json", "--endpoint", "runpod:abc", "--endpoint-slots", "8"])
    fo = cli.options_from_args(args, ["http://127.0.0.1:8188"])
    assert fo.endpoint == "runpod:abc" and fo.endpoint_slots == 8
    args = p.parse_args(["run", "sb.json", "--template", "tpl1"])
    assert cli.options_from_args(args, []).pod.image is None


def test_farm_status_and_down_find_pods_by_prefix(monkeypatch, capsys):
    pytest.importorskip("runpod")
    from driver.farm.runpod_api import PodSpec, RunPodApi
    from driver.farm.runpod_pods import PodFleet
    from devkit.standins.runpod_api import IMAGE, RunPodApiStandIn

    key = "rpa_CLI_TEST_KEY_0000"
    monkeypatch.setenv("RUNPOD_API_KEY", key)
    monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)
    with RunPodApiStandIn(api_key=key, boot_polls=10_000) as standin:
        for prefix in ("ap-lev-ep001-aaaa", "other-project"):  # created, never ready: as a crashed run leaves them
            fleet = PodFleet(RunPodApi(key, base_url=standin.api_url), prefix=prefix, spec=PodSpec(image=IMAGE))
            fleet.api.create_pod(f"{prefix}-01", fleet.spec)
        p, cli = _cli()
        assert cli.main(p.parse_args(["farm", "status", "--runpod-api-url", standin.api_url])) == 0
        out = capsys.readouterr().out
        assert "ap-lev-ep001-aaaa-01" in out and "other-project" not in out and key not in out
        assert cli.main(p.parse_args(["farm", "down", "--prefix", "ap-lev", "--runpod-api-url",
                                      standin.api_url])) == 0
        assert [x.name for x in standin.live()] == ["other-project-01"]


def test_one_server_list_chosen_in_one_place():
    """--server wins; --endpoint and --farm never inherit the config's servers (an endpoint
    run used to fail with exit 2, and every pods pool got http://127.0.0.1:8188 added)."""
    from driver.backends import choose_servers
    from driver.config import load_config

    cfg = load_config(None)
    assert cfg["servers"] == ["http://127.0.0.1:8188"]
    assert choose_servers(FarmOptions(), cfg).servers == cfg["servers"]
    assert choose_servers(FarmOptions(servers=["http://a"]), cfg).servers == ["http://a"]
    endpoint = choose_servers(FarmOptions(endpoint="runpod:x"), cfg)
    assert endpoint.servers == [] and endpoint.problems() == []
    pods = choose_servers(FarmOptions(farm="runpod"), cfg)
    assert pods.servers == [] and not pods.local_fallback()
    assert choose_servers(FarmOptions(farm="runpod", servers=["http://a"]), cfg).servers == ["http://a"]
