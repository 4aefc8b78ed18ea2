"""Serving the review app with uvicorn: loopback by default; any other ``--host`` needs
``--token``; a port in use is reported with the next free one; the URL is printed (and
opened in the browser where there is a desktop)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from driver.comfy.local import is_loopback
from driver.errors import ConfigError

from .app import build_app

log = logging.getLogger(__name__)
DEFAULT_PORT = 8765



def _free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {port}")
    if _free(host, port):
        return
    nxt = next((p for p in range(port + 1, min(port + 50, 65536)) if _free(host, p)), None)
    offer = f"; port {nxt} is free: --port {nxt}" if nxt else ""
    raise ConfigError(f"port {port} on {host} is in use (another review app?){offer}")


def url_for(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def make_server(run_dir: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                reviewer: str | None = None) -> uvicorn.Server:
    if not is_loopback(host) and not token:
        raise ConfigError(f"--host {host} is not loopback: anyone who reaches it could change verdicts; pass "
                          "--token SECRET (the printed URL carries it once), or leave --host at 127.0.0.1")
    app = build_app(run_dir, token=token, reviewer=reviewer)
    check_port(host, port)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         lifespan="off"))


@contextlib.contextmanager
def running(server: uvicorn.Server, timeout: float = 15.0) -> Iterator[uvicorn.Server]:
    """The server in a thread of this process (for tests and scripts)."""
    thread = threading.Thread(target=server.run, name="review-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the review app did not start")
        time.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout)


def serve(run_dir: Path, *, host: str, port: int, token: str | None, reviewer: str | None,
          open_browser: bool = True) -> int:
    server = make_server(run_dir, host=host, port=port, token=token, reviewer=reviewer)
    url = url_for(host, port, token)
    print(f"reviewing {Path(run_dir).resolve()} at {url}  (Ctrl-C to stop)", flush=True)
    desktop = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if open_browser and desktop:
        threading.Timer(0.8, webbrowser.open, args=(url,)).start()
    server.run()
    return 0
