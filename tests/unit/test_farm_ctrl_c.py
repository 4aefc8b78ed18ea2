"""Ctrl-C as a producer sends it: a real SIGINT delivered to the MAIN thread (with
``signal.pthread_kill``) at chosen points of a pods run wired like ``driver.runner``'s
farm branch (open_backend: RunPod stand-in pods, then the Scheduler over the
PoolExecutor; the pods' ComfyUIs are in-memory fakes). KeyboardInterrupt must reach
the caller, every pod must be stopped and the rerun must resume.

Points: after the first job is queued (the main thread waits in ``map_shots``), while
a pod is being created (the pod exists at RunPod before its id is known here), while
the pods boot (``_wait_ready``), and while ``map_shots`` starts its threads."""

from __future__ import annotations

import signal
import threading
import time

import pytest

pytest.importorskip("runpod")

from devkit.farm_helpers import assert_complete_and_verified, farm_run  # noqa: E402
from devkit.standins.runpod_api import RunPodApiStandIn  # noqa: E402
from driver import backends  # noqa: E402
from driver.errors import Cancelled  # noqa: E402
from driver.farm import backend as farm_backend  # noqa: E402
from driver.farm import pool_executor  # noqa: E402
from driver.farm.backend import FarmOptions  # noqa: E402
from driver.farm.pool import ServerPool  # noqa: E402
from driver.farm.pool_executor import PoolExecutor  # noqa: E402
from driver.farm.runpod_pods import TCP_TEMPLATE  # noqa: E402
from driver.outputs.manifest import Manifest  # noqa: E402
from tests.unit.driver_fakes import png, write_storyboard  # noqa: E402
from tests.unit.farm_fakes import FarmClient, FarmServer, fake_member  # noqa: E402
from tests.unit.test_farm_pods import FakeComfy  # noqa: E402
from tests.unit.test_farm_scheduler import SHOTS  # noqa: E402

KEY = "rpa_CTRLC_TESTKEY_0123456789"


def ctrl_c() -> None:
    """What the terminal does on Ctrl-C: SIGINT, handled by the main thread."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


class InterruptingClient(FarmClient):
    """Sends Ctrl-C right after the first job of the run is queued, then lets the job
    run a little while (so the interrupt lands while jobs are in flight)."""

    fired: list | None = None  # set per test

    def run(self, prompt, *, prompt_id, timeout=600.0, on_event=None, extra_data=None):
        fired = type(self).fired
        if fired is not None and not fired:
            fired.append(prompt_id)
            ctrl_c()  # the job is queued (recorded as submitted) and the producer presses Ctrl-C
            time.sleep(0.3)  # the job runs on
        return super().run(prompt, prompt_id=prompt_id, timeout=timeout, on_event=on_event)


class PodsRun:
    """``farm_run`` (driver.runner's farm branch) on stand-in pods: each pod's FakeComfy
    answers readiness, its jobs go to the in-memory FarmServer of its URL."""

    def __init__(self, tmp_path, monkeypatch):
        png(tmp_path / "sb" / "still.png")
        self.sb_path = write_storyboard(tmp_path / "sb", SHOTS)
        self.run_dir = tmp_path / "run"
        self.comfies = [FakeComfy().start() for _ in range(2)]
        self.servers: dict[str, FarmServer] = {}  # pod URL -> its in-memory ComfyUI (kept across runs)
        monkeypatch.setenv("RUNPOD_API_KEY", KEY)
        monkeypatch.delenv("RUNPOD_API_BASE_URL", raising=False)

        def member(url, *, run_id, job_timeout_s, request_timeout_s, reporter=None, slots=1):
            server = self.servers.setdefault(url, FarmServer(url))
            m = fake_member(server, run_id=run_id, capacity=slots)
            m.executor.client = InterruptingClient(server)
            m.executor.client.client_id = f"client-{url}"
            return m

        monkeypatch.setattr(farm_backend, "comfy_member", member)
        monkeypatch.setattr(backends, "preflight", lambda *a: None)  # the fakes serve no /object_info

    def backends(self):
        return [("127.0.0.1", c.port) for c in self.comfies]

    def close(self):
        for c in self.comfies:
            c.stop()

    def __call__(self, standin):
        fo = FarmOptions(farm="runpod", pods=2, runpod_api_url=standin.api_url, pod_url_template=TCP_TEMPLATE,
                         pod_poll_s=0.02, pod_ready_timeout_s=30.0, health_interval_s=0.5)
        return farm_run(self.run_dir, fo, storyboard=self.sb_path)

    def submitted(self) -> list[str]:
        return [p for s in self.servers.values() for p in s.submitted]


@pytest.fixture
def pods_run(tmp_path, monkeypatch):
    run = PodsRun(tmp_path, monkeypatch)
    monkeypatch.setattr(InterruptingClient, "fired", None)
    yield run
    run.close()


def _rerun_resumes(run: PodsRun) -> None:
    with RunPodApiStandIn(api_key=KEY, backends=run.backends()) as standin:
        result, manifest = run(standin)
        assert not result.failures and not standin.live()
    assert_complete_and_verified(manifest, run.run_dir, list(manifest["shots"]))
    assert len(set(run.submitted())) == len(run.submitted())  # nothing was submitted twice


def test_sigint_to_the_main_thread_mid_run_stops_every_pod_and_the_rerun_resumes(pods_run, monkeypatch):
    fired: list = []
    monkeypatch.setattr(InterruptingClient, "fired", fired)
    with RunPodApiStandIn(api_key=KEY, backends=pods_run.backends()) as standin:
        with pytest.raises(KeyboardInterrupt) as err:
            pods_run(standin)
        assert any(entry.name == "map_shots" for entry in err.traceback)  # taken where the main thread waits
        assert fired and len(standin.pods) == 2 and not standin.live()
    monkeypatch.setattr(InterruptingClient, "fired", None)
    manifest = Manifest.load(pods_run.run_dir)
    assert any(a.get("prompt_id") == fired[0] for rec in manifest.data["shots"].values()
               for j in rec["jobs"].values() for a in j["attempts"])  # the interrupted job was recorded
    _rerun_resumes(pods_run)


class InterruptingStandIn(RunPodApiStandIn):
    """Sends Ctrl-C to the driver while answering the first query that matches ``when``,
    and answers it only after the driver has had time to take the signal."""

    def __init__(self, *, when: str, **kw):
        super().__init__(**kw)
        self.when, self.fired = when, False

    def _answer(self, q: str) -> dict:
        answer = super()._answer(q)  # the stand-in has done it (a created pod exists, billing)
        if self.when in q and not self.fired:
            self.fired = True
            ctrl_c()
            time.sleep(0.3)
        return answer


@pytest.mark.parametrize("when, where", [("podFindAndDeployOnDemand", "create_pod"), ("pod(", "_wait_ready")],
                         ids=["creating a pod", "pods booting"])
def test_sigint_during_pod_start_up_stops_every_pod_and_the_rerun_resumes(pods_run, when, where):
    with InterruptingStandIn(when=when, api_key=KEY, backends=pods_run.backends()) as standin:
        with pytest.raises(KeyboardInterrupt) as err:
            pods_run(standin)
        assert any(entry.name == where for entry in err.traceback)
        assert standin.fired and standin.pods and not standin.live(), \
            {p.name: p.status for p in standin.pods.values()}
    assert not pods_run.submitted()
    _rerun_resumes(pods_run)


def test_sigint_while_map_shots_starts_its_threads_stops_the_run(monkeypatch):
    """Ctrl-C landing in the main thread between two Thread.start() calls still stops
    the run: the pool refuses new work and the bookkeeping lock is held by the caller."""
    started: list[threading.Thread] = []

    class InterruptedStart(threading.Thread):
        def start(self):
            super().start()
            started.append(self)
            if len(started) == 1:
                raise KeyboardInterrupt  # where the signal handler would raise it

    monkeypatch.setattr(pool_executor.threading, "Thread", InterruptedStart)
    pool = ServerPool([fake_member(FarmServer(f"http://fake{i}:8188")) for i in range(2)])
    ran: list[int] = []
    release = threading.Event()

    executor = PoolExecutor(pool, threads=2)

    def fn(i):
        ran.append(i)
        with executor._unlocked():  # network I/O of a shot
            release.wait(5)

    with pytest.raises(KeyboardInterrupt):
        executor.map_shots(range(6), fn)
    assert executor._held_by_main  # the caller's last manifest write sees no thread mid-change
    with pytest.raises(Cancelled):
        pool.acquire()
    release.set()
    executor.close()
    for t in started:
        t.join(5)
    assert not any(t.is_alive() for t in started) and ran == [0]
