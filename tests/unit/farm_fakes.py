"""Test doubles for the farm's unit tests: fake ComfyUI servers that can die, come back
and count how many jobs they hold at once, and a pool of them."""

from __future__ import annotations

import threading

from driver.errors import ServerUnreachable
from driver.render.executor import ComfyExecutor
from driver.farm.pool import Member, ServerPool
from tests.unit.driver_fakes import FakeClient, FakeServer


class FarmServer(FakeServer):
    """A fake server that can be down, and records its peak number of jobs in flight."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.down = False
        self.die_on: set[str] = set()  # die (and restart empty) when one of these job ids is submitted
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.gate_event: threading.Event | None = None  # if set, jobs wait for it (to overlap them)


class FarmClient(FakeClient):
    def __init__(self, server: FarmServer, **kw):
        super().__init__(server, url=server.url, **kw)
        self.client_id = f"client-{server.url}"

    def _check(self):
        if self.server.down:
            raise ServerUnreachable(f"no ComfyUI answers at {self.url}")

    def upload_image(self, path, subfolder="", *, overwrite=True, name=None):
        self._check()
        return super().upload_image(path, subfolder, overwrite=overwrite, name=name)

    def run(self, prompt, *, prompt_id, timeout=600.0, on_event=None, extra_data=None):
        self._check()
        s = self.server
        with s.lock:
            s.in_flight += 1
            s.peak = max(s.peak, s.in_flight)
        try:
            if s.gate_event is not None:
                s.gate_event.wait(10)
            if any(prompt_id.startswith(j) or j in prompt_id for j in s.die_on):
                s.die_on.clear()
                s.submitted.append(prompt_id)
                s.down = True
                s.restart()
                raise ServerUnreachable(f"no ComfyUI answers at {self.url} (died)")
            return super().run(prompt, prompt_id=prompt_id, timeout=timeout, on_event=on_event)
        finally:
            with s.lock:
                s.in_flight -= 1

    def history(self, prompt_id):
        self._check()
        return super().history(prompt_id)

    def is_queued(self, prompt_id):
        self._check()
        return super().is_queued(prompt_id)

    def download(self, ref, dest):
        self._check()
        return super().download(ref, dest)


def fake_member(server: FarmServer, run_id: str = "TST-EP007-x", capacity: int = 1, **client_kw) -> Member:
    client = FarmClient(server, **client_kw)

    def probe():
        client._check()
    return Member(server.url, ComfyExecutor(client, run_id=run_id, job_timeout=60), probe, capacity=capacity)


def fake_pool(n: int = 3, **kw) -> tuple[ServerPool, list[FarmServer]]:
    servers = [FarmServer(f"http://fake{i}:8188") for i in range(n)]
    return ServerPool([fake_member(s) for s in servers], **kw), servers
