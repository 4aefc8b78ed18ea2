"""Manifests written by earlier drivers still load and resume: ``tests/fixtures/run_v1``
was written by the driver before the manifest became typed records (version 1, every
submitted workflow inline), ``run_v2`` by the first driver writing version 2 (workflows
in per-attempt files), ``run_v3`` by the last driver writing version 3 (the same run).
Each later version adds its own fixture here."""

import json
import shutil
from pathlib import Path

import pytest

from driver.errors import ConfigError
from driver.outputs.manifest import Manifest
from driver.outputs.records import MANIFEST_VERSION, Status
from tests.unit.driver_fakes import FakeClient, FakeServer, shot
from tests.unit.test_driver_resume import SHOTS, Run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1_SHOTS = [*SHOTS, shot(2, 2, "standard_flf", duration_s=2.0)]  # what wrote run_v1 (fixtures/README.md)


VERSIONS = ["run_v1", "run_v2", "run_v3"]


def _old_run(tmp_path, fixture: str = "run_v1") -> Run:
    run = Run(tmp_path, V1_SHOTS)
    shutil.copytree(FIXTURES / fixture, run.run_dir)
    assert (tmp_path / "sb" / "storyboard.json").read_bytes() == \
        (FIXTURES / "run_v1_storyboard" / "storyboard.json").read_bytes()
    return run


@pytest.mark.parametrize("fixture", VERSIONS)
def test_an_earlier_manifest_loads_with_its_records(tmp_path, fixture):
    run = _old_run(tmp_path, fixture)
    m = Manifest.load(run.run_dir)
    assert m.data["manifest_version"] == MANIFEST_VERSION
    assert {sid: rec["status"] for sid, rec in m.data["shots"].items()} == {
        "S01T01": Status.DONE, "S01T02": Status.DONE, "S02T01": Status.DONE, "S02T02": Status.FAILED}
    video = m.job_record("S01T02", "S01T02-video")
    assert [a["status"] for a in video["attempts"]] == [Status.GATE_FAILED, Status.DONE]
    wf = m.workflow(video["attempts"][1])  # inline in version 1, a file in version 2
    assert any(n["class_type"] == "AP_QualityReport" for n in wf.values())
    assert m.data["shots"]["S02T02"]["error"]["code"] == "prompt_rejected"


@pytest.mark.parametrize("fixture", VERSIONS)
def test_an_earlier_run_resumes_and_is_saved_as_the_current_version(tmp_path, fixture):
    run, server = _old_run(tmp_path, fixture), FakeServer()
    result = run(FakeClient(server))
    # only the rejected shot's video is rendered again; everything else is intact
    assert server.submitted == [a["prompt_id"] for a in run.job("S02T02")["attempts"]]
    assert not result.failures and result.skipped == 8 and result.rendered == 1
    saved = json.loads((run.run_dir / "run_manifest.json").read_text())
    assert saved["manifest_version"] == MANIFEST_VERSION
    old = saved["shots"]["S01T01"]["jobs"]["S01T01-video"]["attempts"][0]
    new = saved["shots"]["S02T02"]["jobs"]["S02T02-video"]["attempts"][0]
    assert ("workflow" in old) == (fixture == "run_v1") and ("workflow_file" in old) == (fixture != "run_v1")
    assert "workflow" not in new and run.manifest.workflow(new) == json.loads(
        (run.run_dir / new["workflow_file"]["path"]).read_text())


def test_unknown_versions_are_refused(tmp_path):
    (tmp_path / "run_manifest.json").write_text(json.dumps({"manifest_version": MANIFEST_VERSION + 1}))
    with pytest.raises(ConfigError, match=f"reads 1, 2, 3, 4 and writes {MANIFEST_VERSION}"):
        Manifest.load(tmp_path)
