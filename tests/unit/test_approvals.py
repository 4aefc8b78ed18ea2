"""approvals.json: the versioned shape, the old one still read, stale writes refused
under the lock, the driver's own changes applied to what a reviewer wrote meanwhile,
and a broken file refused with its path and line (and left as it is)."""

import json
import threading

import pytest

from driver.errors import ConfigError, StaleApprovals
from driver.outputs.approvals import Approvals, read_doc, write_verdict


def _read(tmp_path):
    return json.loads((tmp_path / "approvals.json").read_text())


def test_verdicts_are_versioned_and_carry_who_and_when(tmp_path):
    doc = write_verdict(tmp_path, "S01T02", "video", "retake", expected=0, note="hair pops", by="mika")
    assert doc["version"] == 1
    entry = _read(tmp_path)["shots"]["S01T02"]["video"]
    assert (entry["verdict"], entry["note"], entry["by"]) == ("retake", "hair pops", "mika")
    assert entry["at"].endswith("Z") and entry["at"][10] == "T"
    write_verdict(tmp_path, "S01T02", "keyframes", "needs_review", expected=1)
    a = Approvals.load(tmp_path)
    assert a.version == 2 and a.verdict("S01T02", "video") == "retake" and a.verdict("S01T02") == "needs_review"
    assert a.verdict("S09T09") == "pending" and not a.has("S09T09")


def test_a_stale_write_is_refused_and_changes_nothing(tmp_path):
    write_verdict(tmp_path, "S01T01", "keyframes", "approve", expected=0)
    before = (tmp_path / "approvals.json").read_text()
    with pytest.raises(StaleApprovals, match="changed since version 0") as err:
        write_verdict(tmp_path, "S01T01", "keyframes", "retake", expected=0)
    assert err.value.current == 1 and (tmp_path / "approvals.json").read_text() == before


def test_concurrent_writers_on_the_same_version_exactly_one_wins(tmp_path):
    outcomes = []

    def write(verdict):
        try:
            write_verdict(tmp_path, "S01T01", "keyframes", verdict, expected=0)
            outcomes.append(verdict)
        except StaleApprovals:
            outcomes.append("stale")
    threads = [threading.Thread(target=write, args=(v,)) for v in ("approve", "retake") * 4]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("stale") == 7
    winner = next(o for o in outcomes if o != "stale")
    assert _read(tmp_path)["version"] == 1 and Approvals.load(tmp_path).verdict("S01T01") == winner


def test_the_driver_keeps_a_reviewers_write_made_while_it_ran(tmp_path):
    driver = Approvals.load(tmp_path)  # read at the start of the run
    write_verdict(tmp_path, "S01T01", "keyframes", "approve", expected=0, by="mika")  # the reviewer, meanwhile
    driver.set("S02T01", "pending")
    driver.save()
    a = Approvals.load(tmp_path)
    assert a.version == 2 and a.verdict("S01T01") == "approve" and a.entry("S01T01")["by"] == "mika"
    assert a.has("S02T01")


def test_the_old_shape_is_read_and_unknown_values_refused(tmp_path):
    (tmp_path / "approvals.json").write_text(json.dumps({"S01T01": "approve",
                                                         "S02T01": {"verdict": "retake", "note": "eyes"}}))
    doc = read_doc(tmp_path / "approvals.json")
    assert doc == {"version": 0, "shots": {"S01T01": {"keyframes": {"verdict": "approve"}},
                                           "S02T01": {"keyframes": {"verdict": "retake", "note": "eyes"}}}}
    with pytest.raises(ConfigError, match="unknown verdict"):
        write_verdict(tmp_path, "S01T01", "keyframes", "maybe", expected=0)
    with pytest.raises(ConfigError, match="unknown verdict"):
        write_verdict(tmp_path, "S01T01", "audio", "approve", expected=0)
    (tmp_path / "approvals.json").write_text(json.dumps({"version": 1, "shots": {"S01T01": {"video": {
        "verdict": "ok"}}}}))
    with pytest.raises(ConfigError) as err:
        Approvals.load(tmp_path)
    assert err.value.problems


def test_a_corrupted_file_is_refused_with_its_line_and_left_alone(tmp_path):
    broken = '{"version": 3,\n "shots": {\n  "S01T01": {"keyframes": {"verdict": "approve",}}\n'
    (tmp_path / "approvals.json").write_text(broken)
    with pytest.raises(ConfigError, match=r"approvals\.json line 3: not valid JSON"):
        write_verdict(tmp_path, "S01T01", "keyframes", "retake", expected=3)
    with pytest.raises(ConfigError, match="line 3"):
        Approvals.load(tmp_path)
    assert (tmp_path / "approvals.json").read_text() == broken
