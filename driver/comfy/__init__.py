"""The ComfyUI connection: everything the driver knows about a ComfyUI server and its install.

* :mod:`.client`: HTTP + websocket client for one server (``/prompt``, ``/history``, uploads, downloads).
* :mod:`.finder`: the one answer to "which ComfyUI?" (``--comfyui``, ``COMFYUI_DIR``/``COMFYUI_PYTHON``, the
  config's ``local_comfyui``, the managed install), shared by the driver, the tests and ``.ci/run``.
* :mod:`.home`, :mod:`.source`, :mod:`.packages`, :mod:`.install`: the managed install
  (``python -m driver comfyui install``): a pinned ComfyUI, its own venv, the pack linked in.
* :mod:`.local`: a local ComfyUI started for one run (or for an artist), and stopped on every exit path.
* :mod:`.cli`: ``python -m driver comfyui install|status|start|uninstall|where``.

May import: ``driver.errors``, ``driver.files`` (atomic writes) and third-party libraries; nothing that plans
or renders."""

from pathlib import Path

#: The ComfyUI release the pack is tested against: the managed install's default.
COMFYUI_VERSION = "0.3.64"
#: Its official repository (``git clone`` when no ``--source`` is given).
COMFYUI_REPO = "https://github.com/comfyanonymous/ComfyUI"
#: This repository's node pack, linked into every ComfyUI the driver installs or starts.
PACK_DIR = Path(__file__).resolve().parents[2] / "custom_nodes" / "anime_pipeline"
