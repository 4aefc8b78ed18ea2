"""RunPod pods path: the official SDK talks to a local stand-in of RunPod's GraphQL API
whose pods' "ComfyUI" is a real CPU server. The demo renders across the pods and every
pod is stopped at the end; a pod that never becomes ready is stopped and the run goes
on; Ctrl-C in the middle of a run stops every pod and the rerun resumes; the API key is
in no log line, manifest or error message."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

import pytest

pytest.importorskip("runpod")

from driver.comfy.client import ComfyClient  # noqa: E402
from driver.farm.backend import FarmOptions  # noqa: E402
from driver.farm.errors import BudgetExceeded  # noqa: E402
from driver.farm.runpod_pods import TCP_TEMPLATE  # noqa: E402
from devkit.farm_helpers import assert_complete_and_verified, attempts, farm_run  # noqa: E402
from devkit.standins.runpod_api import RunPodApiStandIn  # noqa: E402

pytestmark = pytest.mark.integration

KEY = "rpa_PODS_INTEGRATION_KEY_7"


@pytest.fixture
def runpod_env(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)


def _backends(comfy):
    """Two pods on the one real server: as 127.0.0.1 and as localhost (two URLs, one queue)."""
    port = urlparse(comfy.url).port
    return [("127.0.0.1", port), ("localhost", port)]


def _options(standin, **kw) -> FarmOptions:
    kw = {"pods": 2, "pod_ready_timeout_s": 30.0, **kw}
    return FarmOptions(farm="runpod", runpod_api_url=standin.api_url, pod_url_template=TCP_TEMPLATE,
                       pod_poll_s=0.1, health_interval_s=1.0, **kw)


def test_demo_renders_on_pods_which_are_all_stopped_and_the_key_is_nowhere(comfy, tmp_path, runpod_env, caplog):
    caplog.set_level(logging.DEBUG)
    with RunPodApiStandIn(api_key=KEY, backends=_backends(comfy)) as standin:
        run_dir = tmp_path / "run"
        seen = []
        result, manifest = farm_run(run_dir, _options(standin, pods=3, pod_ready_timeout_s=3.0),
                                    on_backend=seen.append)
        assert not result.failures
        summary = seen[0].summary  # for the manifest: per server, and the pods' GPU time and cost
        assert summary["pods"]["cost_usd"] > 0 and len(summary["pods"]["pods"]) == 3
        assert sum(s["jobs"] for s in summary["servers"]) == 4
        assert_complete_and_verified(manifest, run_dir, list(manifest["shots"]))
        pod_urls = {f"http://{ip}:{port}" for ip, port in _backends(comfy)}
        assert {att["server"] for *_x, att in attempts(manifest)} <= pod_urls
        # the third pod never got a ComfyUI: stopped after its deadline; all stopped at the end
        assert len(standin.pods) == 3 and not standin.live()
        assert {p.status for p in standin.pods.values()} == {"EXITED"}
        journal = (run_dir / "farm" / "pods.json").read_text()
        assert '"not_ready"' in journal and '"stopped"' in journal
    everything = caplog.text + (run_dir / "run_manifest.json").read_text() + journal
    assert KEY not in everything
    assert any("GPU time" in r.getMessage() and "cost $" in r.getMessage() for r in caplog.records)


def test_ctrl_c_mid_run_stops_every_pod_and_the_rerun_resumes(comfy, tmp_path, runpod_env, monkeypatch):
    original = ComfyClient.queue_prompt
    fired = []

    def queue_then_interrupt(self, *args, **kw):
        pid = original(self, *args, **kw)
        if not fired:
            fired.append(pid)
            # Ctrl-C while the job runs, raised where it is deterministic: in the thread that has
            # just queued the job (the pool executor hands it to the main thread, which stops the
            # run). A SIGINT sent to the main thread (by _thread.interrupt_main() or pthread_kill)
            # went unnoticed in 2 of ~7 full-suite runs and never in isolated runs; cause not found.
            raise KeyboardInterrupt
        return pid

    monkeypatch.setattr(ComfyClient, "queue_prompt", queue_then_interrupt)
    run_dir = tmp_path / "run"
    with RunPodApiStandIn(api_key=KEY, backends=_backends(comfy)) as standin:
        with pytest.raises(KeyboardInterrupt):
            farm_run(run_dir, _options(standin))
        assert fired and len(standin.pods) == 2 and not standin.live()
    monkeypatch.setattr(ComfyClient, "queue_prompt", original)
    with RunPodApiStandIn(api_key=KEY, backends=_backends(comfy)) as standin:
        result, manifest = farm_run(run_dir, _options(standin))
        assert not result.failures and not standin.live()
        assert_complete_and_verified(manifest, run_dir, list(manifest["shots"]))


def test_the_cost_guard_stops_the_run_and_the_pods(comfy, tmp_path, runpod_env):
    with RunPodApiStandIn(api_key=KEY, backends=_backends(comfy), cost_per_hr=500.0) as standin:
        with pytest.raises(BudgetExceeded, match="max-cost-usd"):
            farm_run(tmp_path / "run", _options(standin, max_cost_usd=1.0))
        assert not standin.live()


def test_pods_whose_volume_lacks_the_models_are_refused_and_stopped(comfy_server_factory, tmp_path, runpod_env):
    from driver.errors import PreflightFailed
    from driver.story.storyboard import REPO_ROOT

    # A server of its own: the shared session server may hold stand-in model files that
    # other tests placed under the official names.
    bare = comfy_server_factory()
    with RunPodApiStandIn(api_key=KEY, backends=_backends(bare)) as standin:
        with pytest.raises(PreflightFailed) as err:  # this server has no SDXL checkpoint, no WAN models
            farm_run(tmp_path / "run", _options(standin),
                     storyboard=REPO_ROOT / "storyboards" / "storyboard_ep_001.json")
        assert "sd_xl_base_1.0.safetensors" in str(err.value) and "nothing was queued" in str(err.value)
        assert len(standin.pods) == 2 and not standin.live()
