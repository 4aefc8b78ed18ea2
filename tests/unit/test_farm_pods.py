"""RunPod pods through the official SDK against a local stand-in of RunPod's GraphQL API
(HTTP boundary): readiness, a pod that never becomes ready is stopped, every pod stopped
on any exit (Ctrl-C included), the cost guard, no capacity / unknown GPU, orphans found
by prefix, and the API key in no log line or error message."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("runpod")

from driver.errors import ConfigError  # noqa: E402
from driver.farm.errors import BudgetExceeded, GpuUnavailable, PodNotReady, RunPodApiError, RunPodAuthError  # noqa: E402
from driver.farm.redact import install_log_redaction  # noqa: E402
from driver.farm.runpod_api import PodSpec, RunPodApi  # noqa: E402
from driver.farm.runpod_pods import TCP_TEMPLATE, PodFleet, find_pods, pod_url, stop_pods  # noqa: E402
from devkit.standins.http import JsonServer  # noqa: E402
from devkit.standins.runpod_api import RunPodApiStandIn  # noqa: E402

KEY = "rpa_TESTKEY0123456789abcdef"


class FakeComfy(JsonServer):
    """Answers /system_stats like a ComfyUI (readiness only; the integration tests use a real one)."""

    def __init__(self):
        super().__init__()
        self.route("GET", r"/system_stats", lambda m, b, h: (200, {"system": {"comfyui_version": "0.3.64"}}))


@pytest.fixture
def comfies():
    servers = [FakeComfy().start() for _ in range(2)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def api_env(monkeypatch):
    monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)  # RunPodApi sets it; restored after the test


def _standin(comfies, **kw):
    return RunPodApiStandIn(api_key=KEY, backends=[("127.0.0.1", c.port) for c in comfies], **kw).start()


def _fleet(standin, key=KEY, **kw):
    kw.setdefault("ready_timeout_s", 30.0)
    return PodFleet(RunPodApi(key, base_url=standin.api_url), prefix="ap-test-run", spec=PodSpec(),
                    url_template=TCP_TEMPLATE, poll_s=0.02, **kw)


def test_pods_become_ready_and_are_stopped_at_the_end(comfies, api_env, tmp_path):
    standin = _standin(comfies)
    try:
        fleet = _fleet(standin, journal=tmp_path / "pods.json")
        with fleet:
            urls = fleet.up(2)
            assert urls == [f"http://127.0.0.1:{c.port}" for c in comfies]
            assert len(standin.live()) == 2 and all(p.name.startswith("ap-test-run-") for p in standin.live())
            assert "pod001x" in (tmp_path / "pods.json").read_text()
        assert not standin.live() and {p.status for p in standin.pods.values()} == {"EXITED"}
        s = fleet.summary()
        assert s["cost_usd"] >= 0 and len(s["pods"]) == 2 and all(p["state"] == "stopped" for p in s["pods"])
        assert any("8188/tcp" in q for q in standin.queries)  # the TCP template asks for a TCP port
    finally:
        standin.stop()


def test_terminate_flag_terminates(comfies, api_env):
    standin = _standin(comfies)
    try:
        with _fleet(standin, terminate=True) as fleet:
            fleet.up(1)
        assert [p.status for p in standin.pods.values()] == ["TERMINATED"]
    finally:
        standin.stop()


def test_a_pod_that_never_becomes_ready_is_stopped_and_the_others_serve(comfies, api_env):
    standin = _standin(comfies[:1])  # the second pod gets no ComfyUI: never ready
    try:
        with _fleet(standin, ready_timeout_s=0.5) as fleet:
            urls = fleet.up(2)
            assert urls == [f"http://127.0.0.1:{comfies[0].port}"]
            states = {p.name: p.status for p in standin.pods.values()}
            assert states == {"ap-test-run-01": "RUNNING", "ap-test-run-02": "EXITED"}
        assert not standin.live()
    finally:
        standin.stop()


def test_no_pod_ready_is_pod_not_ready_and_nothing_keeps_billing(api_env):
    standin = RunPodApiStandIn(api_key=KEY).start()
    try:
        with pytest.raises(PodNotReady, match="none of the 2 pod"):
            with _fleet(standin, ready_timeout_s=0.2) as fleet:
                fleet.up(2)
        assert len(standin.pods) == 2 and not standin.live()
    finally:
        standin.stop()


def test_ctrl_c_stops_every_pod(comfies, api_env):
    standin = _standin(comfies)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _fleet(standin) as fleet:
                fleet.up(2)
                raise KeyboardInterrupt
        assert len(standin.pods) == 2 and not standin.live()
    finally:
        standin.stop()


def test_cost_guard_stops_before_the_budget_is_spent(comfies, api_env):
    standin = _standin(comfies, cost_per_hr=1000.0)
    try:
        with pytest.raises(BudgetExceeded, match="--max-cost-usd 5.00"):
            with _fleet(standin, max_cost_usd=5.0) as fleet:
                fleet.up(2)  # 2 x $1000/h: one more minute would cost $33
        assert not standin.live()
    finally:
        standin.stop()


def test_unknown_gpu_and_no_capacity(comfies, api_env):
    standin = _standin(comfies, capacity=1)
    try:
        fleet = PodFleet(RunPodApi(KEY, base_url=standin.api_url), prefix="ap-x", spec=PodSpec(gpu_type="NVIDIA B9000"))
        with pytest.raises(GpuUnavailable, match="B9000"):
            fleet.up(1)
        assert not standin.pods
        with _fleet(standin) as fleet:
            assert len(fleet.up(2)) == 1  # only one could be rented: the run goes on with it
        standin.capacity = 0
        with pytest.raises(GpuUnavailable, match="no longer any instances"):
            with _fleet(standin) as fleet:
                fleet.up(1)
        assert not standin.live()
    finally:
        standin.stop()


def test_orphans_are_found_and_stopped_by_prefix(comfies, api_env):
    standin = _standin(comfies)
    try:
        crashed = _fleet(standin)
        crashed.up(1)  # a run that died without stopping its pod
        other = PodFleet(RunPodApi(KEY, base_url=standin.api_url), prefix="someone-else", spec=PodSpec(),
                         url_template=TCP_TEMPLATE, poll_s=0.02)
        other.up(1)
        api = RunPodApi(KEY, base_url=standin.api_url)
        assert [p["name"] for p in find_pods(api, "ap-")] == ["ap-test-run-01"]
        assert stop_pods(api, "ap-test") == ["pod001x"]
        assert [p.name for p in standin.live()] == ["someone-else-01"]
        with pytest.raises(Exception, match="at least 3"):
            stop_pods(api, "a")
    finally:
        standin.stop()


def test_the_api_key_is_in_no_log_line_or_error(comfies, api_env, caplog):
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    standin = _standin(comfies, capacity=0, echo_key_in_errors=True)
    try:
        with pytest.raises(GpuUnavailable) as err:
            with _fleet(standin) as fleet:
                fleet.up(1)
        assert KEY not in str(err.value) and "[REDACTED]" in str(err.value)
        logging.getLogger("driver.farm").error("echo %s", KEY)  # even a careless log call is masked
        with pytest.raises(RunPodAuthError) as bad:
            RunPodApi("rpa_WRONGKEY000000000", base_url=standin.api_url).pods()
        assert "WRONGKEY" not in str(bad.value)
        with pytest.raises(RunPodAuthError, match="RUNPOD_API_KEY"):
            RunPodApi(None)
        assert KEY not in caplog.text and "WRONGKEY" not in caplog.text and "[REDACTED]" in caplog.text
        assert all(KEY not in q for q in standin.queries)  # only in the Authorization header
    finally:
        standin.stop()


def test_unsafe_values_are_refused_before_sending(comfies, api_env):
    standin = _standin(comfies)
    try:
        fleet = PodFleet(RunPodApi(KEY, base_url=standin.api_url), prefix="ap-x",
                         spec=PodSpec(env={"TOKEN": 'a"b'}))
        with pytest.raises(ConfigError, match="unescaped"):
            fleet.up(1)
        assert not standin.pods
    finally:
        standin.stop()


def test_pod_url_from_proxy_or_public_port():
    pod = {"id": "abc", "runtime": {"ports": [{"ip": "10.0.0.1", "isIpPublic": False, "privatePort": 8188,
                                               "publicPort": 1}, {"ip": "1.2.3.4", "isIpPublic": True,
                                                                  "privatePort": 8188, "publicPort": 40123}]}}
    assert pod_url(pod, "https://{pod_id}-8188.proxy.runpod.net") == "https://abc-8188.proxy.runpod.net"
    assert pod_url(pod, TCP_TEMPLATE) == "http://1.2.3.4:40123"
    assert pod_url({"id": "abc", "runtime": None}, TCP_TEMPLATE) is None


def test_api_errors_are_typed(api_env):
    standin = RunPodApiStandIn(api_key=KEY).start()
    try:
        api = RunPodApi(KEY, base_url=standin.api_url)
        with pytest.raises(RunPodApiError, match="pod not found"):
            api.stop("nope")
    finally:
        standin.stop()


def test_template_and_network_volume_reach_the_mutation(comfies, api_env):
    standin = _standin(comfies)
    try:
        spec = PodSpec(image=None, template_id="tpl-anime", network_volume_id="vol-models")
        with PodFleet(RunPodApi(KEY, base_url=standin.api_url), prefix="ap-tpl", spec=spec,
                      url_template=TCP_TEMPLATE, poll_s=0.02) as fleet:
            fleet.up(1)
        (mutation,) = [q for q in standin.queries if "podFindAndDeployOnDemand" in q]
        assert 'templateId: "tpl-anime"' in mutation and 'networkVolumeId: "vol-models"' in mutation
        assert 'imageName: ""' in mutation and 'dataCenterId: "EU-RO-1"' in mutation  # the volume's data center
        assert 'volumeMountPath: "/workspace"' in mutation
    finally:
        standin.stop()
