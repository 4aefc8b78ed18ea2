"""The review app against a running server (uvicorn in a thread, real HTTP): the page and
its state, seekable files (206), verdicts saved with stale writes refused, bad input,
path traversal and the token gate."""

import http.client
import json
import socket

import pytest

from driver.cli import main
from driver.errors import ConfigError
from driver.outputs.approvals import Approvals
from driver.review.serve import make_server, running
from tests.unit.driver_fakes import FakeClient, FakeServer
from tests.unit.test_driver_resume import SHOTS, Run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_dir(tmp_path):
    run = Run(tmp_path, SHOTS)
    run(FakeClient(FakeServer()))
    (tmp_path / "secret.txt").write_text("outside")
    (run.run_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    return run.run_dir


class App:
    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)  # the path goes out exactly as given
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def json(self, method, path, body=None, headers=None):
        resp, data = self.request(method, path, body, headers)
        return resp.status, json.loads(data)


@pytest.fixture
def app(run_dir):
    port = _free_port()
    with running(make_server(run_dir, port=port, reviewer="mika")):
        yield App(port)


def test_page_state_and_seekable_files(app, run_dir):
    resp, page = app.request("GET", "/")
    assert resp.status == 200 and b'"live":true' in page and b"<script>" in page
    status, state = app.json("GET", "/api/state")
    assert status == 200 and [s["id"] for s in state["shots"]] == ["S01T01", "S01T02", "S02T01"]
    assert app.json("GET", f"/api/state?since={state['stamp']}") == (200, {"unchanged": True})
    clip = state["shots"][1]["video"]["path"]
    resp, data = app.request("GET", f"/run/{clip}", headers={"Range": "bytes=4-11"})
    size = (run_dir / clip).stat().st_size
    assert resp.status == 206 and resp.getheader("Content-Range") == f"bytes 4-11/{size}"
    assert data == (run_dir / clip).read_bytes()[4:12]


@pytest.mark.parametrize("path", ["/run/../secret.txt", "/run/%2e%2e/secret.txt", "/run/..%2fsecret.txt",
                                  "/run/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/run//etc/passwd", "/run/%2fetc%2fpasswd",
                                  "/run/link.txt", "/run/keyframes", "/run/..\\secret.txt", "/run/a%00b"])
def test_files_outside_the_run_folder_are_refused(app, path):
    resp, data = app.request("GET", path)
    assert resp.status == 404 and b"outside" not in data


def test_verdicts_are_saved_and_stale_writes_refused(app, run_dir):
    _, state = app.json("GET", "/api/state")
    v = state["approvals_version"]
    status, body = app.json("POST", "/api/verdict", {"shot": "S01T02", "kind": "video", "verdict": "retake",
                                                     "note": "hair pops", "version": v})
    assert status == 200 and body["state"]["approvals_version"] == v + 1
    entry = Approvals.load(run_dir).entry("S01T02", "video")
    assert (entry["verdict"], entry["note"], entry["by"]) == ("retake", "hair pops", "mika")
    before = (run_dir / "approvals.json").read_text()
    status, body = app.json("POST", "/api/verdict", {"shot": "S01T01", "kind": "keyframes", "verdict": "approve",
                                                     "version": v})  # a second tab, still at v
    assert status == 409 and "changed since version" in body["error"]
    assert body["state"]["approvals_version"] == v + 1 and (run_dir / "approvals.json").read_text() == before


@pytest.mark.parametrize("body, status, words", [
    ({"shot": "S09T09", "kind": "video", "verdict": "approve", "version": 0}, 400, "unknown shot 'S09T09'"),
    ({"shot": "S01T01", "kind": "video", "verdict": "ok", "version": 0}, 400, "unknown verdict"),
    ({"shot": "S01T01", "kind": "audio", "verdict": "approve", "version": 0}, 400, "unknown verdict"),
    ({"shot": "S01T01", "kind": "video", "verdict": "approve", "version": "x"}, 400, "version an integer"),
    (["S01T01"], 400, "JSON object"),
])
def test_bad_verdicts_get_a_clear_message(app, run_dir, body, status, words):
    before = (run_dir / "approvals.json").read_text()
    got, answer = app.json("POST", "/api/verdict", body)
    assert got == status and words in answer["error"]
    assert (run_dir / "approvals.json").read_text() == before
    resp, _ = app.request("POST", "/api/verdict", b"", {"Content-Type": "text/plain"})
    assert resp.status == 415


def test_a_corrupted_approvals_file_is_shown_and_never_overwritten(app, run_dir):
    broken = '{"version": 2, "shots": {\n  "S01T01": nope}}\n'
    (run_dir / "approvals.json").write_text(broken)
    _, state = app.json("GET", "/api/state")
    assert "approvals.json line 2: not valid JSON" in state["error"]
    status, body = app.json("POST", "/api/verdict", {"shot": "S01T01", "kind": "video", "verdict": "approve",
                                                     "version": 2})
    assert status == 409 and "line 2" in body["error"] and (run_dir / "approvals.json").read_text() == broken


def test_the_token_gate(run_dir):
    port = _free_port()
    with running(make_server(run_dir, port=port, token="s3cret")):
        a = App(port)
        assert a.request("GET", "/")[0].status == 401
        assert a.request("GET", "/run/run_manifest.json")[0].status == 401
        assert a.request("GET", "/?token=wrong")[0].status == 401
        resp, _ = a.request("GET", "/?token=s3cret")
        cookie = resp.getheader("Set-Cookie")
        assert resp.status == 303 and "token" not in resp.getheader("Location") and "HttpOnly" in cookie
        value = cookie.split(";")[0]
        assert a.request("GET", "/", headers={"Cookie": value})[0].status == 200
        assert a.request("GET", "/api/state", headers={"Authorization": "Bearer s3cret"})[0].status == 200
        assert a.request("GET", "/api/state", headers={"Authorization": "Bearer nope"})[0].status == 401
        assert a.request("POST", "/api/verdict", {"shot": "S01T01"})[0].status == 401


def test_host_port_and_folder_checks(run_dir, tmp_path, caplog):
    with pytest.raises(ConfigError, match="not loopback.*--token"):
        make_server(run_dir, host="0.0.0.0", port=_free_port())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"port {port} on 127.0.0.1 is in use.*--port \d+"):
            make_server(run_dir, port=port)
    assert main(["review", str(tmp_path / "sb"), "--no-browser"]) == 2
    assert "is not a run folder (no run_manifest.json)" in caplog.text
    (tmp_path / "dry" / "dry-run").mkdir(parents=True)
    (tmp_path / "dry" / "dry-run" / "plan.json").write_text("{}")
    assert main(["review", str(tmp_path / "dry"), "--no-browser"]) == 2
    assert "holds only a dry run" in caplog.text
