"""A tiny threaded JSON HTTP server for the stand-ins (127.0.0.1, random port)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Route = tuple[str, "re.Pattern[str]", Callable]


class JsonServer:
    """``routes``: (method, regex on the path, handler(match, body: bytes, headers) ->
    (status, json-able or bytes)). Subclasses register routes in ``__init__``."""

    def __init__(self):
        self.routes: list[Route] = []
        self.requests: list[tuple[str, str, dict]] = []  # method, path, headers
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, handler: Callable) -> None:
        self.routes.append((method, re.compile(pattern + r"/?(?:\?.*)?$"), handler))

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((method, self.path, dict(self.headers)))
                for m, rx, handler in server.routes:
                    match = rx.match(self.path)
                    if m == method and match:
                        status, payload = handler(match, body, self.headers)
                        break
                else:
                    status, payload = 404, {"error": f"no route for {method} {self.path}"}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        httpd = self._httpd
        self._thread = threading.Thread(target=lambda: httpd.serve_forever(poll_interval=0.05),
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
