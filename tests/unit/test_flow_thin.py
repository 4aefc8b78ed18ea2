"""OpenCV's DIS flow segfaults on some thin frame sizes; core.flow pads around it. Run in a
subprocess so a regression fails this test instead of killing the test session."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("h,w", [(20, 160), (160, 6), (6, 6), (13, 400)])
def test_flow_on_thin_frames_does_not_crash(h, w):
    code = (
        "import numpy as np\n"
        "from anime_pipeline.core.flow import compute_flow\n"
        f"a = np.random.default_rng(0).integers(0, 255, ({h}, {w}), dtype=np.uint8)\n"
        "f = compute_flow(a, np.roll(a, 1, axis=1), scale=1.0)\n"
        f"assert f.shape == ({h}, {w}, 2), f.shape\n"
        "assert np.isfinite(f).all()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
