"""The demo storyboard (shipped keyframes, no diffusion model) renders end to end on a
real CPU ComfyUI into named assets, a manifest, the episode cut and the dailies page;
rerunning the same command submits nothing."""

from __future__ import annotations

import json

import pytest

from anime_pipeline.core.naming import parse_asset_name
from driver.cli import main
from driver.files import sha256_file
from driver.story.storyboard import REPO_ROOT, load_storyboard
from devkit.harness.media import probe_video

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "storyboards" / "demo" / "demo.json"


def _history_size(comfy) -> int:
    return len(comfy.client._json("GET", "/history"))


def test_demo_renders_end_to_end_and_resumes(comfy, tmp_path):
    sb = load_storyboard(DEMO)
    run_dir = tmp_path / "run"
    args = ["run", str(DEMO), "--server", comfy.url, "--out", str(run_dir), "--plain"]
    assert main(args) == 0, comfy.server.log_tail()

    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    assert manifest["storyboard"]["sha256"] == sb.sha256 and manifest["driver"]["git_commit"]
    for shot in sb.shots:
        rec = manifest["shots"][shot.id]
        assert rec["status"] == "done", rec
        video = rec["assets"]["video"]
        name = parse_asset_name(video["path"].split("/")[-1])
        assert (name.project, name.episode, name.shot_id, name.suffix) == ("DEMO", 1, shot.id, "video")
        assert sha256_file(run_dir / video["path"]) == video["sha256"]
        n, size, fps = probe_video(run_dir / video["path"])
        assert (n, size, fps) == (shot.frames(24), (432, 768), 24.0)
        att = rec["jobs"][f"{shot.id}-video"]["attempts"][0]
        assert att["server"] == comfy.url and att["timings"]["execution_s"] > 0
        assert json.loads((run_dir / att["workflow_file"]["path"]).read_text())  # the submitted workflow
    strip_shot = manifest["shots"]["S02T01"]["assets"]
    assert {"first", "hero", "last"} <= set(strip_shot)
    assert strip_shot["hero"]["path"] == "keyframes/DEMO_EP001_S02_T01_MIRA_hero.png"

    cut = manifest["episode"]["cut"]
    assert cut["path"] == "DEMO_EP001_cut.mp4" and not cut["placeholders"]
    assert probe_video(run_dir / cut["path"])[0] == sum(s.frames(24) for s in sb.shots)
    page = (run_dir / "dailies.html").read_text()
    assert all(s.id in page for s in sb.shots) and "clips/DEMO_EP001_S01_T01_MIRA_video.mp4" in page

    before = _history_size(comfy)
    assert main(args) == 0
    assert _history_size(comfy) == before  # resumed: nothing submitted
    again = json.loads((run_dir / "run_manifest.json").read_text())
    assert again["shots"]["S01T01"]["jobs"]["S01T01-video"]["attempts"] == \
        manifest["shots"]["S01T01"]["jobs"]["S01T01-video"]["attempts"]
