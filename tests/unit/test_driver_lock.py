"""One driver per folder: a second holder is refused naming the first; a lock left by a
killed process is taken over; the lock file survives for the next holder to overwrite."""

import json
import os
import signal
import subprocess
import sys

import pytest

from driver.errors import ERROR_CLASSES
from driver.lock import LOCK_NAME, FolderLocked, folder_lock

HOLD = ("import sys, time; from pathlib import Path; from driver.lock import folder_lock\n"
        "with folder_lock(Path(sys.argv[1]), command='driver run held'):\n"
        "    print('held', flush=True); time.sleep(120)\n")


def _hold(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_refused_naming_the_first_then_taken_over_after_a_kill(tmp_path):
    proc = _hold(tmp_path)
    try:
        with pytest.raises(FolderLocked) as err, folder_lock(tmp_path):
            pass
        assert f"pid {proc.pid}" in str(err.value) and "driver run held" in str(err.value)
        assert err.value.exit_code == 25 and ERROR_CLASSES["folder_locked"] is FolderLocked
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with folder_lock(tmp_path, command="driver run next") as path:  # the dead holder's lock is gone
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["command"] == "driver run next"


def test_lock_in_the_same_process_is_exclusive_and_released_after_the_block(tmp_path):
    with folder_lock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_NAME).is_file()
        with pytest.raises(FolderLocked), folder_lock(tmp_path / "new"):
            pass
    with folder_lock(tmp_path / "new"):  # released: a new holder gets it
        pass
