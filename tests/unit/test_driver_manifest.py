"""Manifest writes are atomic; approvals and quality reports parse as documented;
exit codes follow one class per error with a fixed precedence."""

import json
import os

import pytest

from driver import errors
from driver.farm import errors as farm_errors  # noqa: F401 - its classes join ERROR_CLASSES
from driver.outputs.approvals import Approvals
from driver.errors import ConfigError, exit_code_for
from driver.files import atomic_write_json, file_intact, file_record
from driver.outputs.manifest import Manifest
from driver.outputs import quality


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"v": 1})

    class Boom(Exception):
        pass

    def failing_replace(src, dst):
        raise Boom()

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(Boom):
        atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_atomic_writes_follow_the_umask(tmp_path):
    """Manifest, dailies and downloads are readable by a teammate as any file the user makes (mkstemp alone
    made them 0600)."""
    from driver import files as m

    for mask in (0o022, 0o002, 0o077):
        old = m._UMASK
        m._UMASK = mask
        try:
            atomic_write_json(tmp_path / f"doc{mask:o}.json", {"a": 1})
        finally:
            m._UMASK = old
        assert (tmp_path / f"doc{mask:o}.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_file_records_detect_changes(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    rec = file_record(tmp_path, f)
    assert rec["path"] == "a.bin" and file_intact(tmp_path, rec)
    f.write_bytes(b"abd")
    assert not file_intact(tmp_path, rec)
    f.unlink()
    assert not file_intact(tmp_path, rec) and not file_intact(tmp_path, None)


def test_manifest_version_and_garbage_are_refused(tmp_path):
    (tmp_path / "run_manifest.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        Manifest.load(tmp_path)
    (tmp_path / "run_manifest.json").write_text(json.dumps({"manifest_version": 99}))
    with pytest.raises(ConfigError, match="manifest_version 99"):
        Manifest.load(tmp_path)
    assert Manifest.load(tmp_path / "none") is None


def test_approvals_format(tmp_path):
    (tmp_path / "approvals.json").write_text(json.dumps({"S01T01": "approve", "S02T01": {"verdict": "retake",
                                                                                          "note": "eyes"}}))
    a = Approvals.load(tmp_path)
    assert (a.verdict("S01T01"), a.verdict("S02T01"), a.verdict("S09T09")) == ("approve", "retake", "pending")
    a.set("S02T01", "pending")
    a.save()
    assert json.loads((tmp_path / "approvals.json").read_text())["S02T01"] == {"verdict": "pending", "note": "eyes"}
    (tmp_path / "approvals.json").write_text(json.dumps({"S01T01": "yes", "shot1": "approve"}))
    with pytest.raises(ConfigError) as err:
        Approvals.load(tmp_path)
    assert len(err.value.problems) == 2


def test_quality_report_from_history_and_from_a_stop_error():
    report = {"version": 1, "passed": False, "gates": [{"name": "seam", "passed": False, "metrics": {"jump": 4.1},
                                                        "failed_frames": [40]}]}
    entry = {"outputs": {"22": {"ap_quality_report": [report], "images": []}}}
    assert quality.report_from_history(entry, "22") == report
    assert quality.report_from_history({"outputs": {"22": {"ap_quality_report": [json.dumps(report)]}}}, "22") == report
    msg = "seam failed: jump 4.1 > 3\nAP_QUALITY_REPORT:\n" + json.dumps(report) + "\nOOM tip: lower the batch\n"
    assert quality.parse_report_from_error(msg) == report
    assert quality.parse_report_from_error("no marker") is None
    assert not quality.passed(report) and not quality.passed(None)
    assert quality.summary(report) == [{"name": "seam", "passed": False, "metrics": {"jump": 4.1}}]


def test_scores_rank_attempts():
    good = {"passed": False, "gates": [{"passed": True}, {"passed": False, "failed_frames": [1]}]}
    worse = {"passed": False, "gates": [{"passed": True}, {"passed": False, "failed_frames": [1, 2, 3]}]}
    worst = {"passed": False, "gates": [{"passed": False}, {"passed": False}]}
    assert quality.score(good) > quality.score(worse) > quality.score(worst) > quality.score(None)


def test_exit_codes_one_per_class_with_precedence():
    codes = {cls.code: cls.exit_code for cls in errors.ERROR_CLASSES.values() if cls.__module__ == "driver.errors"}
    distinct = {c for k, c in codes.items() if k not in ("execution_interrupted", "template_invalid")}
    assert len(distinct) == len(codes) - 1  # interrupted shares execution_error's code
    assert exit_code_for([]) == 0
    assert exit_code_for(["quality_failed", "execution_error"]) == errors.ExecutionFailed.exit_code
    assert exit_code_for(["review_pending", "quality_failed"]) == errors.QualityFailed.exit_code
    assert exit_code_for(["execution_interrupted"]) == errors.ExecutionFailed.exit_code
    assert exit_code_for(["something_new"]) == 1
    # farm codes: a shot's farm error takes its parent's code; fleet errors rank after Ctrl-C
    assert exit_code_for(["serverless_timeout"]) == errors.ExecutionFailed.exit_code
    assert exit_code_for(["server_unreachable", "gpu_unavailable"]) == 11
    assert exit_code_for(["runpod_api", "budget_exceeded"]) == 12
    assert exit_code_for(["cancelled", "budget_exceeded"]) == 130


def test_atomic_writes_of_one_path_never_share_a_temporary_file(tmp_path):
    from driver.files import atomic_write_chunks

    dest = tmp_path / "shot_last_a1.png"

    def slow_writer():  # an interrupted run's thread, still downloading
        yield b"first "
        atomic_write_chunks(dest, [b"second writer"])  # the rerun collects the same output meanwhile
        yield b"writer"

    atomic_write_chunks(dest, slow_writer())
    assert dest.read_bytes() == b"first writer"  # the last rename wins, nothing failed
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]  # no temporary file left

    def broken():
        yield b"partial"
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        atomic_write_chunks(dest, broken())
    assert dest.read_bytes() == b"first writer"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]
