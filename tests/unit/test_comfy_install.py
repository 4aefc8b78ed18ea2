"""``driver comfyui install`` against a tiny stand-in ComfyUI and local wheels (seconds per case, offline):
a complete install, idempotence, the requirements-changed path, the lock, and every failure path leaving the
home without a half install. The real install from the shared tarball runs in ``.ci/run``."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest

from driver.cli import main
from driver.comfy import finder, install as inst, packages
from driver.comfy.home import Home
from driver.comfy.install import InstallOptions, install
from driver.errors import (ComfyUIBroken, ComfyUINotInstalled, ConfigError, DiskFull, InstallSourceError,
                           NotWritable, PackageInstallFailed, PythonUnsupported)
from tests.unit.comfy_standin import offline_pip, standin_source, wheelhouse

VERSION = "0.3.64"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    return wheelhouse(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def env(tmp_path, monkeypatch, wheels):
    """A stand-in source, an empty home, offline pip and a small pack requirements file."""
    offline_pip(monkeypatch, wheels)
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    monkeypatch.delenv("COMFYUI_PYTHON", raising=False)
    reqs = tmp_path / "pack-requirements.txt"
    reqs.write_text("apstandinpkg\n")
    monkeypatch.setattr(inst, "PACK_REQUIREMENTS", reqs)
    src = standin_source(tmp_path / "src" / "ComfyUI")
    return type("Env", (), {"src": src, "home": tmp_path / "home", "reqs": reqs, "tmp": tmp_path})


def opts(env, **kw) -> InstallOptions:
    return InstallOptions(**{"source": str(env.src), "home": env.home, **kw})


def pip_calls(monkeypatch) -> list:
    calls = []
    real = packages.Pip.run

    def spy(self, args, what, *, required=True):
        calls.append(what)
        return real(self, args, what, required=required)

    monkeypatch.setattr(packages.Pip, "run", spy)
    return calls


def test_install_lays_out_a_complete_install(env):
    result = install(opts(env))
    build = result.build
    assert result.changed == "installed"
    assert (env.home / VERSION / "current").resolve() == build.path
    assert (build.root / "custom_nodes" / "anime_pipeline" / "__init__.py").is_file()
    assert build.python.is_file() and build.python.parent.parent == build.path / "venv"
    rec = build.record
    assert (rec.comfyui_version, rec.torch, rec.cuda, rec.source) == (VERSION, "0.0.1", False, str(env.src))
    assert rec.pack_requirements_sha256 == packages.sha256_file(env.reqs)
    assert "apstandinpkg" in (build.path / "install.log").read_text()
    found = finder.find_comfyui(home=env.home)
    assert (found.root, found.python, found.origin, found.cuda) == (build.root, build.python, "managed", False)


def test_same_call_again_changes_nothing(env, monkeypatch):
    first = install(opts(env))
    calls = pip_calls(monkeypatch)
    again = install(opts(env))
    assert again.changed == "unchanged" and again.build.path == first.build.path and calls == []
    assert install(InstallOptions(home=env.home)).changed == "unchanged"  # no --source: the installed one is kept


def test_changed_pack_requirements_reinstall_those_alone(env, monkeypatch):
    first = install(opts(env))
    env.reqs.write_text("apstandinpkg\napstandinextra\n")
    calls = pip_calls(monkeypatch)
    result = install(opts(env))
    assert result.changed == "requirements" and result.build.path == first.build.path
    assert calls == [f"the pack's requirements ({env.reqs})"]
    assert result.build.record.pack_requirements_sha256 == packages.sha256_file(env.reqs)
    assert Home(env.home).current(VERSION).record.pack_requirements_sha256 == packages.sha256_file(env.reqs)


def test_second_install_waits_for_the_first_and_says_who_holds_the_lock(env):
    home = Home(env.home)
    told, done = [], []
    with home.lock():
        t = threading.Thread(target=lambda: done.append(install(opts(env), progress=told.append)))
        t.start()
        deadline = time.monotonic() + 30
        while not told and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not done, "the second install did not wait"
    t.join(120)
    assert done and done[0].changed == "installed"
    assert "waiting for the install already running" in told[0] and "pid" in told[0]


def test_force_with_a_failing_pip_keeps_the_good_install(env):
    good = install(opts(env)).build
    env.reqs.write_text("apstandinpkg\nno-such-package-anywhere==9.9\n")
    with pytest.raises(PackageInstallFailed, match="no-such-package-anywhere") as err:
        install(opts(env, force=True))
    assert "nothing was marked installed" in str(err.value)
    current = Home(env.home).current(VERSION)
    assert current.path == good.path and current.record == good.record
    assert [b.name for b in (env.home / VERSION / "builds").iterdir()] == [good.path.name]


def test_first_install_with_a_failing_pip_leaves_nothing_installed(env):
    env.reqs.write_text("no-such-package-anywhere==9.9\n")
    with pytest.raises(PackageInstallFailed):
        install(opts(env))
    assert Home(env.home).current(VERSION) is None
    with pytest.raises(ComfyUINotInstalled, match="python -m driver comfyui install"):
        finder.find_comfyui(home=env.home)


def test_source_that_is_not_a_comfyui(env):
    (env.src / "main.py").unlink()
    with pytest.raises(InstallSourceError, match="not a ComfyUI") as err:
        install(opts(env))
    assert err.value.code == "source_invalid" and err.value.exit_code == 14
    assert not (env.home / VERSION).exists()


def test_archive_source_and_a_broken_archive(env):
    import tarfile

    archive = env.tmp / "ComfyUI-0.3.64.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(env.src, arcname="ComfyUI")
    assert install(opts(env, source=str(archive))).build.record.source == str(archive)
    broken = env.tmp / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(InstallSourceError, match="cannot be unpacked"):
        install(opts(env, source=str(broken)))


def test_no_network_names_source(env):
    with pytest.raises(InstallSourceError, match="--source") as err:
        install(opts(env, source="https://127.0.0.1:9/ComfyUI.git@v0.3.64"))
    assert err.value.code == "source_unreachable" and "offline" in str(err.value)


def test_missing_git(env, monkeypatch):
    monkeypatch.setattr("driver.comfy.source.shutil.which", lambda name: None)
    with pytest.raises(InstallSourceError, match="git is not installed") as err:
        install(opts(env, source=None))
    assert err.value.code == "git_missing"


def test_python_the_pinned_comfyui_cannot_run_on(env):
    fake = env.tmp / "python3.9"
    fake.write_text("#!/bin/sh\necho 3.9.18\n")
    fake.chmod(0o755)
    with pytest.raises(PythonUnsupported, match=r"3\.9\.18.*supported are 3\.10 to 3\.13"):
        install(opts(env, python=str(fake)))
    with pytest.raises(PythonUnsupported, match="cannot run it"):
        install(opts(env, python=str(env.tmp / "no-such-python")))
    assert not (env.home / VERSION).exists()


def test_comfyui_that_does_not_start_is_not_installed(env, monkeypatch):
    monkeypatch.setenv("STANDIN_BROKEN", "1")
    with pytest.raises(ComfyUIBroken, match="broken on purpose"):
        install(opts(env))
    assert Home(env.home).current(VERSION) is None


@pytest.mark.parametrize("err, cls", [(errno.ENOSPC, DiskFull), (errno.EROFS, NotWritable), (errno.EACCES, NotWritable)])
def test_full_disk_and_unwritable_home(env, monkeypatch, err, cls):
    """Tests run as root, so file modes cannot fail them: the OSError is injected where the build folder is
    made, and goes through the same guard as a real one."""
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if self.parent.name == "builds":
            raise OSError(err, "injected")
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(cls, match=str(env.home)):
        install(opts(env))
    assert Home(env.home).current(VERSION) is None


def test_cli_exit_codes_and_messages(env, capsys):
    (env.src / "main.py").unlink()
    assert main(["comfyui", "install", "--source", str(env.src), "--home", str(env.home), "--plain"]) == 14
    assert main(["comfyui", "where", "--home", str(env.home)]) == 13
    assert "python -m driver comfyui install" in capsys.readouterr().err


def test_wrong_environment_variables_are_errors_naming_them(env, monkeypatch):
    monkeypatch.setenv("COMFYUI_DIR", str(env.tmp / "nowhere"))
    with pytest.raises(ConfigError, match="COMFYUI_DIR="):
        finder.find_comfyui(home=env.home)
    monkeypatch.setenv("COMFYUI_DIR", str(env.src))
    monkeypatch.setenv("COMFYUI_PYTHON", str(env.tmp / "no-python"))
    with pytest.raises(ConfigError, match="COMFYUI_PYTHON="):
        finder.find_comfyui(home=env.home)
    monkeypatch.delenv("COMFYUI_PYTHON")
    (env.src / ".venv" / "bin").mkdir(parents=True)
    (env.src / ".venv" / "bin" / "python").write_text("")
    assert finder.find_comfyui(home=env.home).python == env.src / ".venv" / "bin" / "python"


def test_local_comfyui_none_and_a_path(env, monkeypatch):
    assert finder.find_comfyui(local_comfyui="none", home=env.home) is None
    monkeypatch.setattr(finder.importlib.util, "find_spec", lambda name: None)  # the driver's Python has no torch
    with pytest.raises(ConfigError, match="no venv in it .* lacks torch.*COMFYUI_PYTHON"):
        finder.find_comfyui(local_comfyui=str(env.src), home=env.home)
    (env.src / "venv" / "bin").mkdir(parents=True)
    (env.src / "venv" / "bin" / "python").write_text("")
    assert finder.find_comfyui(local_comfyui=str(env.src), home=env.home).origin == "local_comfyui"
    assert finder.find_comfyui(Path(env.src), local_comfyui="none").origin == "--comfyui"


def test_uninstall_removes_only_the_home(env):
    install(opts(env))
    assert env.src.is_dir()
    assert main(["comfyui", "uninstall", "--home", str(env.home)]) == 0
    assert not (env.home / VERSION).exists() and env.src.is_dir()


def test_status_of_a_managed_comfyui_that_no_longer_starts_says_why(env, caplog):
    """The stand-in installs (its quick test passes) but exits at once when started as a server: ``status``
    exits 19 with the last lines of its log."""
    install(opts(env))
    assert main(["comfyui", "status", "--home", str(env.home), "--plain"]) == 19
    assert "exited with code 0 while starting" in caplog.text and "standin ComfyUI ok" in caplog.text
