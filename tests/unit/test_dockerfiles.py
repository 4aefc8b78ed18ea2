"""Static checks of the farm images (no Docker engine runs on this machine): pinned base
and ComfyUI version (the same as the driver's messages name), the pack copied where
ComfyUI loads custom nodes, its requirements installed, nothing floating; ComfyUI, torch
and the pack's requirements installed into the Python the image runs (``/opt/venv``:
``VIRTUAL_ENV`` set before ``comfy install``, no ``/comfyui/.venv``), and the build ends
with the smoke test (``docker/smoke_test.py``) that starts ComfyUI and loads the pack."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from driver.farm.images import COMFYUI_VERSION, WORKER_COMFYUI_BASE

DOCKER = Path(__file__).resolve().parents[2] / "docker"
IMAGES = ["pod", "serverless"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        buf += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            op, _, args = buf.partition(" ")
            lines.append((op.upper(), args.strip()))
            buf = ""
    return lines


def args_of(ins) -> dict[str, str]:
    return dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)


@pytest.fixture(params=IMAGES)
def dockerfile(request):
    return instructions(DOCKER / request.param / "Dockerfile")


def test_base_image_is_pinned(dockerfile):
    froms = [a for op, a in dockerfile if op == "FROM"]
    assert froms == [WORKER_COMFYUI_BASE]
    image, _, tag = froms[0].partition(":")
    assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+-", tag)


def test_comfyui_is_reinstalled_at_the_pinned_version_and_checked(dockerfile):
    assert args_of(dockerfile)["COMFYUI_VERSION"] == COMFYUI_VERSION
    runs = " ".join(a for op, a in dockerfile if op == "RUN")
    assert re.search(r'comfy --workspace /comfyui install --version "\$\{COMFYUI_VERSION\}"', runs)
    assert "comfyui_version.__version__" in runs and '= "${COMFYUI_VERSION}"' in runs


def test_the_pack_is_copied_and_its_requirements_installed(dockerfile):
    copies = [shlex.split(a) for op, a in dockerfile if op == "COPY"]
    assert ["custom_nodes/anime_pipeline", "/comfyui/custom_nodes/anime_pipeline"] in copies
    runs = [a for op, a in dockerfile if op == "RUN"]
    assert any("pip install" in r and "-r /comfyui/custom_nodes/anime_pipeline/requirements.txt" in r for r in runs)
    # the pack lands after ComfyUI is reinstalled (rm -rf /comfyui would remove it otherwise)
    order = [op + " " + a for op, a in dockerfile]
    reinstall = next(i for i, x in enumerate(order) if "rm -rf /comfyui" in x)
    copy = next(i for i, x in enumerate(order) if x.startswith("COPY custom_nodes/anime_pipeline"))
    assert reinstall < copy


def test_every_pip_install_is_pinned_or_a_requirements_file(dockerfile):
    params = args_of(dockerfile)
    for op, a in dockerfile:
        if op != "RUN" or "pip install" not in a:
            continue
        for cmd in a.split("&&"):
            if "pip install" not in cmd:
                continue
            words = [w for w in shlex.split(cmd.split("pip install", 1)[1]) if not w.startswith("-")]
            if "-r" in cmd:
                continue
            for w in words:
                w = re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], w)
                assert re.match(r"^[A-Za-z0-9_.\-\[\]]+==\d[\w.]*$", w), f"unpinned: {w}"


def test_serverless_image_keeps_the_worker_and_pins_its_sdk():
    ins = instructions(DOCKER / "serverless" / "Dockerfile")
    assert not [a for op, a in ins if op in ("CMD", "ENTRYPOINT")]  # the worker's /start.sh stays
    assert args_of(ins)["RUNPOD_SDK_VERSION"] == "1.12.0"
    paths = yaml.safe_load((DOCKER / "serverless" / "extra_model_paths.yaml").read_text())
    section = paths["runpod_worker_comfy"]
    assert section["base_path"] == "/runpod-volume"
    assert {"diffusion_models", "text_encoders", "loras", "vae", "unet", "clip"} <= section.keys()
    assert section["interpolation"] == "models/interpolation/"  # AP_LoadInterpolator's folder


def test_pod_image_serves_comfyui_on_all_interfaces():
    ins = instructions(DOCKER / "pod" / "Dockerfile")
    (cmd,) = [a for op, a in ins if op == "CMD"]
    assert "--listen" in cmd and "0.0.0.0" in cmd and "8188" in cmd
    paths = yaml.safe_load((DOCKER / "pod" / "extra_model_paths.yaml").read_text())
    assert {s["base_path"] for s in paths.values()} == {"/workspace", "/runpod-volume"}
    assert all(s["interpolation"] == "models/interpolation/" for s in paths.values())


def test_readme_says_unbuilt_and_builds_for_amd64():
    text = (DOCKER / "README.md").read_text()
    assert "Unbuilt on this machine" in text
    assert text.count("--platform linux/amd64") >= 2
    for image in IMAGES:
        assert f"docker/{image}/Dockerfile" in text


def test_context_is_limited_to_the_pack_and_docker():
    for image in IMAGES:
        lines = [ln.strip() for ln in (DOCKER / image / "Dockerfile.dockerignore").read_text().splitlines()]
        assert lines.index("**") < lines.index("!custom_nodes/anime_pipeline/**")


def _smoke_module():
    spec = importlib.util.spec_from_file_location("smoke_test", DOCKER / "smoke_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _index(dockerfile, pred) -> int:
    return next(i for i, (op, a) in enumerate(dockerfile) if pred(op, a))


def test_comfyui_is_installed_into_the_python_the_image_runs(dockerfile):
    envs = {k: v for op, a in dockerfile if op == "ENV" for k, v in (w.split("=", 1) for w in shlex.split(a))}
    assert envs["VIRTUAL_ENV"] == "/opt/venv" and "PATH" not in envs  # the base's PATH (/opt/venv/bin first) kept
    env = _index(dockerfile, lambda op, a: op == "ENV" and "VIRTUAL_ENV=" in a)
    install = _index(dockerfile, lambda op, a: op == "RUN" and "comfy --workspace /comfyui install" in a)
    assert env < install and "test ! -e /comfyui/.venv" in dockerfile[install][1]
    for op, a in dockerfile:  # every install and check runs the venv's python, not a system one
        if op == "RUN":
            assert not re.search(r"(/usr/bin/python|python3\.\d+|pip3?\s)", a.replace("python -m pip", "")), a


def test_the_build_ends_with_the_smoke_test(dockerfile):
    copy = _index(dockerfile, lambda op, a: op == "COPY" and shlex.split(a)[0] == "docker/smoke_test.py")
    target = shlex.split(dockerfile[copy][1])[1]
    smoke = _index(dockerfile, lambda op, a: op == "RUN" and target in a)
    pack = _index(dockerfile, lambda op, a: op == "RUN" and "anime_pipeline/requirements.txt" in a)
    assert pack < copy < smoke and not [a for op, a in dockerfile[smoke + 1:] if op == "RUN"]
    words = shlex.split(dockerfile[smoke][1].replace("${COMFYUI_VERSION}", args_of(dockerfile)["COMFYUI_VERSION"]))
    assert words[:2] == ["python", target]  # the python on PATH: what /start.sh and the pod's CMD run
    args = _smoke_module().build_parser().parse_args(words[2:])
    assert (str(args.comfyui), args.expect_prefix, args.comfyui_version) == ("/comfyui", "/opt/venv", COMFYUI_VERSION)
    assert not args.allow_missing and not args.base_directory


def test_the_pod_starts_comfyui_with_the_venvs_python():
    ins = instructions(DOCKER / "pod" / "Dockerfile")
    (cmd,) = [a for op, a in ins if op == "CMD"]
    assert cmd.startswith('["/opt/venv/bin/python", "-u", "/comfyui/main.py"')
