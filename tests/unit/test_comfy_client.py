"""``ComfyClient``'s public view of a server's limits (``features``), used by the enhance command instead of
a private request helper."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from driver.comfy.client import ComfyClient


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        status, body = self.answers.get(self.path, (404, b"404: Not Found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_features_reads_the_servers_limits(server):
    client = ComfyClient(f"http://127.0.0.1:{server.server_address[1]}", request_timeout=5)
    _Handler.answers = {"/features": (200, json.dumps({"supports_preview_metadata": True,
                                                       "max_upload_size": 104857600}).encode())}
    assert client.features()["max_upload_size"] == 104857600
    _Handler.answers = {}  # an older ComfyUI: no such route
    assert client.features() == {}
    _Handler.answers = {"/features": (200, b"[1, 2]")}  # not an object: nothing to read
    assert client.features() == {}
