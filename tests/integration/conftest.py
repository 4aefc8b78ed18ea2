"""Fixtures for tests against a real ComfyUI server on CPU.

* ``comfy`` (session): one server with this pack and the test-only nodes loaded; attributes
  ``url``, ``base_dir``, ``input_dir``, ``output_dir``, ``models_dir``, ``client``, ``server``.
* ``tiny_wan`` (session): tiny random WAN 2.2 i2v DiTs and a random WAN 2.1 VAE linked into
  the server's model folders; ``{"high": ..., "low": ..., "vae": ...}`` file names.
* ``comfy_server_factory``: start extra, disposable servers (killed at the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.harness.comfy import ServerHandle, find_comfyui, link_model, start_server, tiny_models
from driver.comfy.client import ComfyClient


@dataclass
class Comfy:
    server: ServerHandle
    client: ComfyClient

    url = property(lambda self: self.server.url)
    base_dir = property(lambda self: self.server.base_dir)
    input_dir = property(lambda self: self.server.input_dir)
    output_dir = property(lambda self: self.server.output_dir)
    models_dir = property(lambda self: self.server.models_dir)


@pytest.fixture(scope="session")
def comfy_install():
    install, reason = find_comfyui()
    if install is None:
        pytest.skip(reason)
    return install


@pytest.fixture(scope="session")
def comfy(comfy_install, tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("comfy_base"), install=comfy_install)
    try:
        yield Comfy(server, ComfyClient(server.url))
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_wan(comfy, comfy_install):
    src = tiny_models(comfy_install)
    models = comfy.models_dir
    return {
        "high": link_model(models, "diffusion_models", src / "tiny_wan22_i2v_high.safetensors"),
        "low": link_model(models, "diffusion_models", src / "tiny_wan22_i2v_low.safetensors"),
        "vae": link_model(models, "vae", src / "tiny_wan21_vae.safetensors"),
    }


@pytest.fixture
def comfy_server_factory(comfy_install, tmp_path_factory):
    started: list[ServerHandle] = []

    def factory(base_dir: Path | None = None, **kw) -> ServerHandle:
        handle = start_server(base_dir or tmp_path_factory.mktemp("comfy_extra"), install=comfy_install, **kw)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()
