"""``Executor.recover`` asks the queue before the history: a prompt that finishes
between the two calls is still found, not rendered a second time."""

from __future__ import annotations

from types import SimpleNamespace

from driver.render.executor import ComfyExecutor

ENTRY = {"outputs": {}, "status": {"status_str": "success", "completed": True, "messages": []}}


class _FinishingClient:
    """The prompt is queued until the first call that looks at it, then in history."""

    url = "http://fake:8188"

    def __init__(self, state: str):
        self.state = state  # "queued", "history" or "gone"
        self.calls = []

    def _after_call(self):
        if self.state == "queued":
            self.state = "history"  # it finishes right after this answer

    def is_queued(self, pid):
        self.calls.append("queue")
        answer = self.state == "queued"
        self._after_call()
        return answer

    def history(self, pid):
        self.calls.append("history")
        answer = ENTRY if self.state == "history" else None
        self._after_call()
        return answer

    def wait_for(self, pid, *, timeout=600.0, **_):
        self.calls.append("wait")
        self.state = "history"
        return ENTRY


def _recover(client):
    ex = ComfyExecutor(client, run_id="r", job_timeout=5.0)
    return ex.recover(SimpleNamespace(prompt_id="p1"))


def test_job_finishing_between_the_two_lookups_is_found_not_resubmitted():
    client = _FinishingClient("queued")
    got = _recover(client)
    assert got is not None and got[0] is ENTRY  # old order (history, then queue) returned None here
    assert client.calls[0] == "queue"


def test_finished_job_comes_from_history():
    client = _FinishingClient("history")
    assert _recover(client)[0] is ENTRY


def test_job_in_neither_is_lost():
    client = _FinishingClient("gone")
    assert _recover(client) is None
    assert client.calls == ["queue", "history"]


def test_single_server_slot_is_a_no_op():
    client = _FinishingClient("gone")
    with ComfyExecutor(client, run_id="r", job_timeout=1.0).slot(None, "http://elsewhere:8188") as held:
        assert held is None
    assert client.calls == []  # holding a slot asks the server nothing
