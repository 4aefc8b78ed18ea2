"""The managed ComfyUI's Python: its venv, torch, ComfyUI's requirements and the pack's, all by pip.

Torch goes first and is then pinned (a constraints file), so no later requirement can swap it for another
build. Without ``--torch``, a machine with no usable GPU asks the PyTorch CPU index first (a CPU build is ~200 MB
where pip's default on Linux is a CUDA build of several GB); where that index cannot be reached, pip resolves
torch as the platform does, and the install says so."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackageInstallFailed, PythonUnsupported

log = logging.getLogger(__name__)

#: Python versions the pinned ComfyUI and the pack run on (ComfyUI 0.3.64 recommends 3.12; torch wheels exist
#: for 3.10-3.13).
SUPPORTED_PYTHON = ((3, 10), (3, 13))
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Imported by ComfyUI 0.3.64 (app/frontend_management.py) but not in its requirements.txt.
EXTRA_REQUIREMENTS = ("requests",)
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def python_version(python: str | Path) -> tuple[int, int, int]:
    """The version of ``python``, checked to be supported and able to make a venv."""
    probe = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PythonUnsupported(f"--python {python}: cannot run it ({exc})") from exc
    if done.returncode:
        if "ensurepip" in done.stderr or "venv" in done.stderr:
            raise PythonUnsupported(f"--python {python}: it cannot make a venv (on Debian/Ubuntu: apt install "
                                    "python3-venv)")
        raise PythonUnsupported(f"--python {python}: {done.stderr.strip().splitlines()[-1:]}")
    version = tuple(int(x) for x in done.stdout.split("."))
    low, high = SUPPORTED_PYTHON
    if not low <= version[:2] <= high:
        raise PythonUnsupported(f"Python {'.'.join(map(str, version))} ({python}) cannot run the managed ComfyUI: "
                                f"supported are {low[0]}.{low[1]} to {high[0]}.{high[1]}; pass --python PATH")
    return version  # type: ignore[return-value]


def default_python() -> str:
    """The interpreter behind the driver's own Python (its venv's base), to make ComfyUI's venv from."""
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass
class Pip:
    """pip in one venv; its output goes to ``log_path``, a failure names the package and the log."""

    python: Path
    log_path: Path

    def run(self, args: list[str], what: str, *, required: bool = True) -> bool:
        cmd = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
        with self.log_path.open("a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n")
            fh.flush()
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
        if done.returncode == 0:
            return True
        if not required:
            return False
        raise PackageInstallFailed(f"pip could not install {what}: {self.failure_line()} (full log: {self.log_path}); "
                                   "nothing was marked installed, run the same command again once fixed")

    def failure_line(self) -> str:
        """pip's own words about what failed: the last ERROR line, which names the package."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        errors = [ln.strip() for ln in lines if ln.startswith("ERROR:") or "No space left" in ln]
        return errors[-1] if errors else (lines[-1].strip() if lines else "no output")


def make_venv(python: str | Path, dest: Path, log_path: Path) -> Path:
    with log_path.open("a") as fh:
        done = subprocess.run([str(python), "-m", "venv", str(dest)], stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        raise PythonUnsupported(f"--python {python}: making a venv at {dest} failed (log: {log_path})")
    return dest / "bin" / "python"


def install_torch(pip: Pip, spec: str | None, gpu: bool) -> None:
    """torch and torchvision (required by ComfyUI), then torchaudio if one matches (optional: audio nodes)."""
    if spec:
        pip.run(spec.split(), f"torch ({spec!r} from --torch)")
    elif gpu or not pip.run(["--index-url", CPU_INDEX, "torch", "torchvision"], "torch (CPU)", required=False):
        if not gpu:
            log.warning("the PyTorch CPU index (%s) cannot be reached: pip resolves torch as the platform does, "
                        "which can mean several GB of CUDA wheels; pass --torch SPEC to choose a build", CPU_INDEX)
        pip.run(["torch", "torchvision"], "torch")
    pinned = pinned_torch(pip.python)
    if "torchvision" not in pinned:
        pip.run(["torchvision", "-c", str(write_constraints(pip, pinned))],
                "torchvision (matching the installed torch)")
    if "torchaudio" not in pinned_torch(pip.python):
        if not pip.run(["torchaudio", "-c", str(write_constraints(pip, pinned_torch(pip.python)))], "torchaudio",
                       required=False):
            log.warning("no torchaudio matches torch %s: ComfyUI's audio nodes will not load (nothing in this "
                        "pack needs them)", pinned["torch"])


def pinned_torch(python: Path) -> dict[str, str]:
    """Versions of the torch family installed in ``python``'s environment."""
    probe = (f"import json, importlib.metadata as m\nout = {{}}\nfor n in {TORCH_FAMILY!r}:\n"
             "    try: out[n] = m.version(n)\n"
             "    except m.PackageNotFoundError: pass\nprint(json.dumps(out))")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def write_constraints(pip: Pip, pinned: dict[str, str]) -> Path:
    path = pip.log_path.with_name("constraints.txt")
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pinned.items())))
    return path


def check_torch(python: Path) -> dict:
    """Import torch and torchvision as ComfyUI will; their versions and whether CUDA is usable."""
    probe = ("import json, torch, torchvision\nprint(json.dumps({'torch': torch.__version__, "
             "'cuda': bool(torch.cuda.is_available())}))")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackageInstallFailed(f"torch/torchvision do not import in {python}: {last} (torchvision must be the "
                                   "build made for the installed torch; pass --torch 'torch==X torchvision==Y')")
    return json.loads(done.stdout.strip().splitlines()[-1])


def comfy_requirements(root: Path, dest: Path) -> Path:
    """ComfyUI's requirements without the torch family (installed and pinned first), plus what it imports
    without listing."""
    kept = []
    for line in (root / "requirements.txt").read_text().splitlines():
        m = _REQ_NAME.match(line)
        if m and m[1].lower() in TORCH_FAMILY:
            continue
        kept.append(line)
    dest.write_text("\n".join([*kept, *EXTRA_REQUIREMENTS]) + "\n")
    return dest


def install_requirements(pip: Pip, root: Path, pack_requirements: Path) -> None:
    constraints = write_constraints(pip, pinned_torch(pip.python))
    reqs = comfy_requirements(root, pip.log_path.with_name("comfyui-requirements.txt"))
    pip.run(["-r", str(reqs), "-c", str(constraints)], "ComfyUI's requirements")
    install_pack_requirements(pip, pack_requirements, constraints)


def install_pack_requirements(pip: Pip, pack_requirements: Path, constraints: Path | None = None) -> None:
    """The pack's requirements, torch pinned (``constraints``: a file already written for this venv, else one is
    written from what is installed)."""
    constraints = constraints or write_constraints(pip, pinned_torch(pip.python))
    pip.run(["-r", str(pack_requirements), "-c", str(constraints)], f"the pack's requirements ({pack_requirements})")
