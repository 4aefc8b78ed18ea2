"""The review app in a real headless Chromium (the system's, through Playwright) on run
folders the driver rendered on a real CPU ComfyUI: the demo storyboard (keyframes stage,
then the video stage after the verdicts) and a tiny-WAN run with a failed and a passed
attempt (then a clip retake, rendered again with a new seed). Screenshots go to
``AP_SCREENSHOTS`` when set."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from driver.cli import main
from driver.outputs.approvals import Approvals
from driver.review.serve import make_server, running
from driver.story.storyboard import REPO_ROOT
from devkit.harness.browser import VIEWPORT, PageLog
from tests.integration.test_driver_wan import OPEN_GATES, tiny_wan_storyboard

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"


@pytest.fixture(scope="module")
def chromium(browser):
    """The session's headless Chromium (tests/conftest.py): one Playwright per process (a second sync Playwright
    inside the first one's loop is refused)."""
    return browser


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reviewer:
    """One tab of the review app."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport=VIEWPORT)
        self.log = PageLog()
        self.log.attach(self.page)
        self.page.goto(url)
        self.page.wait_for_function("() => window.review && window.review.selected()")

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def press(self, *keys: str) -> None:
        for k in keys:
            self.page.keyboard.press(k)

    def saved(self, text: str) -> None:
        self.page.wait_for_function("t => document.getElementById('toast').textContent.includes(t)", arg=text)

    def retake(self, note: str) -> None:
        self.press("r")
        self.page.wait_for_selector("#note-input", state="visible")
        self.page.keyboard.type(note)
        self.press("Enter")

    def shot(self, sid: str) -> dict:
        return self.js("sid => window.review.state().shots.find(s => s.id === sid)", sid)

    def screenshot(self, name: str) -> None:
        folder = os.environ.get("AP_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / name))


def _kf_verdicts(run_dir: Path) -> dict:
    a = Approvals.load(run_dir)
    return {sid: {k: (e["verdict"], e.get("note", "")) for k, e in kinds.items()} for sid, kinds in a.entries.items()}


def test_demo_review_with_the_keyboard_then_the_video_stage(comfy, chromium, tmp_path):
    run_dir = tmp_path / "run"
    base = ["run", str(DEMO), "--server", comfy.url, "--out", str(run_dir), "--plain"]
    assert main([*base, "--stage", "keyframes"]) == 0, comfy.server.log_tail()
    port = _port()
    with running(make_server(run_dir, port=port, reviewer="mika")):
        url = f"http://127.0.0.1:{port}/"
        tab, other = Reviewer(chromium, url), Reviewer(chromium, url)  # the second tab read the same version
        # ... and hears of no change until it writes (its polls answered "unchanged"): a stale write, every time
        other.page.route("**/api/state*", lambda route: route.fulfill(json={"unchanged": True}))
        assert tab.js("window.review.selected()") == "S01T01" and tab.js("window.review.target()") == "keyframes"
        tab.press("ArrowRight", "ArrowLeft")
        assert tab.js("window.review.selected()") == "S01T01"
        tab.press("a")
        tab.saved("S01T01 keyframes: approved")
        tab.press("ArrowRight")
        assert tab.js("window.review.selected()") == "S01T02"
        tab.press("a")
        tab.saved("S01T02 keyframes: approved")
        tab.press("ArrowDown")
        tab.retake("darker sky, Mira further left")
        tab.saved("S02T01 keyframes: retake")

        tab.page.click("img.kf-img")  # the lightbox, full size
        tab.page.wait_for_selector("#lightbox:not([hidden])")
        full = tab.js("(() => { const i = document.getElementById('lightbox-img');"
                      " return [i.complete, i.naturalWidth, i.getBoundingClientRect().width]; })()")
        assert full[0] and full[1] > 0 and full[2] > 200
        tab.screenshot("demo_lightbox.png")
        tab.press("Escape")
        assert tab.js("document.getElementById('lightbox').hidden")

        expected = {"S01T01": {"keyframes": ("approve", "")}, "S01T02": {"keyframes": ("approve", "")},
                    "S02T01": {"keyframes": ("retake", "darker sky, Mira further left")}}
        assert _kf_verdicts(run_dir) == expected
        assert all(e["by"] == "mika" for kinds in Approvals.load(run_dir).entries.values() for e in kinds.values())

        other.press("n")  # stale: that tab still holds the version it loaded
        other.saved("changed since version")
        assert _kf_verdicts(run_dir) == expected
        assert other.shot("S01T01")["verdicts"]["keyframes"]["verdict"] == "approve"  # reloaded the current ones
        assert "--stage video" in tab.js("document.getElementById('next-cmd').textContent")

        code = main([*base, "--stage", "video"])  # the app keeps serving while the driver renders
        assert code == 20  # needs_new_image: S02T01's keyframes come from the storyboard
        tab.page.wait_for_function("() => window.review.state().shots.filter(s => s.video).length == 2",
                                   timeout=15000)  # no reload: the page follows the run folder
        tab.page.wait_for_selector("#cut-box:not([hidden])")  # the cut, its placeholder marked
        tab.page.wait_for_function("() => document.querySelector('.marker[data-shot=S02T01]')"
                                   ".textContent.includes('placeholder')")
        s02 = tab.shot("S02T01")
        assert s02["status"] == "failed" and "replace the image" in s02["error"]
        assert tab.shot("S01T01")["status"] == "done" and tab.shot("S01T02")["status"] == "done"

        tab.press("ArrowUp", "ArrowUp")
        assert tab.js("window.review.selected()") == "S01T01"
        tab.page.wait_for_selector("#player-a video")
        tab.js("(() => { const v = document.querySelector('#player-a video'); v.muted = true; })()")
        tab.press(" ")
        tab.page.wait_for_function("() => document.querySelector('#player-a video').currentTime > 0.2",
                                   timeout=15000)
        tab.screenshot("demo_after_video_stage.png")
        assert not tab.log.errors()
        assert other.log.errors() == ["Failed to load resource: the server responded with a status of 409 (Conflict)"]

    disk = Reviewer(chromium, (run_dir / "dailies.html").as_uri())  # the shared copy, from disk, read-only
    assert disk.js("window.review.state().shots.length") == 3 and not disk.page.query_selector(".vb")
    assert "replace the image" in disk.shot("S02T01")["error"]
    disk.page.wait_for_function("() => { const i = document.querySelector('.tile img'); return i.naturalWidth > 0; }")
    assert not disk.log.errors()


@pytest.fixture
def wan_run(comfy, tiny_wan, tmp_path):
    sb_path, cfg_path = tiny_wan_storyboard(tmp_path, tiny_wan, OPEN_GATES)
    run_dir = tmp_path / "run"
    base = ["run", str(sb_path), "--server", comfy.url, "--config", str(cfg_path), "--out", str(run_dir), "--plain"]
    assert main(base) == 9, comfy.server.log_tail()  # the split shot failed its gates on both attempts
    return run_dir, base


def test_tiny_wan_attempts_gates_and_a_clip_retake(wan_run, chromium):
    run_dir, base = wan_run
    port = _port()
    with running(make_server(run_dir, port=port)):
        tab = Reviewer(chromium, f"http://127.0.0.1:{port}/")
        tab.press("ArrowRight")
        split = tab.shot("S02T01")
        assert tab.js("window.review.selected()") == "S02T01" and split["failing_gates"]
        video_job = next(j for j in split["jobs"] if j["stage"] == "video")
        a1, a2 = video_job["attempts"]
        seam = next(g for g in a1["gates"] if g["name"] == "seam")
        assert not seam["passed"] and seam["reasons"] and seam["failed_frames"]
        assert all(r in tab.page.inner_text("#detail") for r in seam["reasons"])  # each failing gate's reason

        tab.page.click(f".cmp-att[data-v='{a2['video']}']")  # the second attempt beside the first
        tab.page.wait_for_selector("#player-b:not([hidden]) video")
        assert tab.js("document.querySelector('#player-b video').src").endswith(a2["video"])
        frame = seam["failed_frames"][0]
        tab.page.click(f".frame[data-frame='{frame}'][data-v='{a1['video']}']")
        tab.page.wait_for_function(  # the gates saw the clip at WAN's rate: the same moment in the delivered clip
            f"() => {{ const v = document.querySelector('#player-a video'); return v.duration > 0 && v.paused && "
            f"Math.abs(v.currentTime - {(frame + 0.5) / a1['report_frames']} * v.duration) < 0.02; }}")
        assert tab.js("document.querySelector('#player-a video').src").endswith(a1["video"])
        tab.page.select_option("#f-gate", "seam")  # the filter by failing gate leaves the split shot
        assert tab.js("[...document.querySelectorAll('.tile:not(.hidden)')].map(t => t.title.split(':')[0])") \
            == ["S02T01"]
        tab.screenshot("wan_attempts_gates.png")
        tab.page.select_option("#f-gate", "")

        tab.press("ArrowLeft")
        assert tab.js("window.review.selected()") == "S01T01" and tab.js("window.review.target()") == "video"
        seed1 = tab.shot("S01T01")["jobs"][-1]["attempts"][0]["seed"]
        tab.retake("hair pops at 0.3 s")
        tab.saved("S01T01 video: retake")
        tab.press("t", "a")  # and its keyframes approved, so the video stage takes it
        tab.saved("S01T01 keyframes: approved")
        assert main([*base, "--stage", "video"]) == 10  # S02T01's keyframes still wait for a verdict
        tab.page.wait_for_function("() => window.review.state().shots[0].video.attempt == 2", timeout=15000)
        attempts = tab.shot("S01T01")["jobs"][-1]["attempts"]
        assert [a["n"] for a in attempts] == [1, 2] and attempts[1]["seed"] != seed1
        assert tab.shot("S01T01")["verdicts"]["video"]["verdict"] == "pending"  # the new clip waits for review
        assert not tab.log.errors()
    m = json.loads((run_dir / "run_manifest.json").read_text())
    assert m["shots"]["S01T01"]["jobs"]["S01T01-video"]["retake_from"] == 2
