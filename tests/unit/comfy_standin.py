"""A tiny stand-in ComfyUI source and wheelhouse for the install tests: each install takes seconds, offline.

* ``standin_source(dir)``: a ComfyUI-shaped tree (``main.py``, ``comfyui_version.py``, ``requirements.txt``
  naming the torch family and one small package). Its ``main.py --quick-test-for-ci`` exits 0 when the pack is
  linked into ``--base-directory/custom_nodes`` and ``torch`` imports, 3 otherwise (as a broken ComfyUI would).
* ``wheelhouse(dir)``: wheels made here for ``torch``, ``torchvision``, ``torchaudio`` and ``apstandinpkg``;
  ``offline_pip(monkeypatch, wheels)`` points pip at them alone (``PIP_NO_INDEX``/``PIP_FIND_LINKS``)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

MAIN_PY = '''import argparse, os, sys
p = argparse.ArgumentParser()
p.add_argument("--quick-test-for-ci", action="store_true")
p.add_argument("--base-directory")
args, _ = p.parse_known_args()
import torch, torchvision  # as ComfyUI does at start-up
if os.environ.get("STANDIN_BROKEN"):
    sys.exit("standin: broken on purpose")
pack = os.path.join(args.base_directory or ".", "custom_nodes", "anime_pipeline", "__init__.py")
if not os.path.isfile(pack):
    print("IMPORT FAILED: anime_pipeline"); sys.exit(3)
print("standin ComfyUI ok")
'''


def standin_source(root: Path, version: str = "0.3.64", extra_requirements: str = "apstandinpkg\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(MAIN_PY)
    (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    (root / "requirements.txt").write_text("torch\ntorchvision\ntorchaudio\n" + extra_requirements)
    for sub in ("custom_nodes", "input", "output", "models"):
        (root / sub).mkdir(exist_ok=True)
    return root


def _wheel(dest: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    dist = f"{name}-{version}.dist-info"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    entries = {**files, f"{dist}/METADATA": meta,
               f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    out = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, text in entries.items():
            z.writestr(path, text)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return out


def wheelhouse(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    torch_init = ("__version__ = '0.0.1'\nclass cuda:\n    @staticmethod\n    def is_available():\n"
                  "        return False\n")
    _wheel(dest, "torch", "0.0.1", {"torch/__init__.py": torch_init})
    _wheel(dest, "torchvision", "0.0.1", {"torchvision/__init__.py": "__version__ = '0.0.1'\n"}, ("torch==0.0.1",))
    _wheel(dest, "torchaudio", "0.0.1", {"torchaudio/__init__.py": ""}, ("torch==0.0.1",))
    _wheel(dest, "apstandinpkg", "1.0", {"apstandinpkg/__init__.py": ""})
    _wheel(dest, "apstandinextra", "1.0", {"apstandinextra/__init__.py": ""})
    _wheel(dest, "requests", "0.0.1", {"requests/__init__.py": ""})  # ComfyUI imports it unlisted
    return dest


def offline_pip(monkeypatch, wheels: Path) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
