"""Malformed inputs of every kind the driver reads (storyboards, configs, approvals,
manifests, command lines, and faults of the file system), built at test time: each ends in
its exit code with the JSON path, option or file named, never a traceback. Node inputs over
``/prompt`` are in ``tests/integration/test_hardening.py``."""

from __future__ import annotations

import copy
import errno
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from driver.cli import main
from driver.lock import folder_lock

OK, CONFIG, DISK_FULL, NOT_WRITABLE, LOCKED, ARGPARSE = 0, 2, 17, 18, 25, 2

BASE_SB = {
    "version": 3, "project": "LEV", "episode": 1,
    "delivery": {"width": 64, "height": 64, "fps": 8},
    "model_profile": "wan22_sdxl",
    "characters": {"JINX": {"registry": "jinx"}},
    "shots": [
        {"scene": 1, "take": 1, "generation_approach": "held_frame_static", "duration_s": 1.0, "seed": 1,
         "keyframes": {"hero": "keyframes/hero.png"}},
        {"scene": 1, "take": 2, "generation_approach": "held_frame_push", "duration_s": 1.0, "seed": 2,
         "hero_prompt": "a rooftop", "push": {"zoom_start": 1.0, "zoom_end": 1.2,
                                              "center_start": [0.5, 0.5], "center_end": [0.5, 0.4]}},
    ],
}
BASE_CFG = "servers: [http://127.0.0.1:9]\nlocal_comfyui: none\noutput_root: runs\n"
BASE_MANIFEST = {"manifest_version": 3, "run_id": "LEV-EP001-x", "created_at": "t", "updated_at": "t",
                 "storyboard": {"path": "sb.json"}, "episode": {},
                 "shots": {"S01T01": {"status": "pending", "assets": {}, "jobs": {}, "keyframe_round": 1}}}


@dataclass
class Case:
    id: str
    argv: Callable[[Path], list[str]]           # the command line, given the case's folder
    code: int
    named: str | None                           # what the error message must name (path, option, file)
    files: dict[str, object] = field(default_factory=dict)  # name -> dict (JSON) / str / bytes written first
    patch: Callable | None = None               # (monkeypatch, folder) -> None: a fault injected


def _set(doc: dict, path: str, value) -> dict:
    """``doc`` with ``path`` (``shots.0.push.zoom_end``) set to ``value`` (``DELETE`` removes it)."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return doc


DELETE = object()
NAN = float("nan")


def validate(tmp: Path) -> list[str]:
    return ["validate", str(tmp / "sb.json"), "--config", str(tmp / "cfg.yaml")]


def dry_run(tmp: Path) -> list[str]:
    return ["run", str(tmp / "sb.json"), "--config", str(tmp / "cfg.yaml"), "--out", str(tmp / "run"), "--dry-run"]


def status(tmp: Path) -> list[str]:
    return ["status", str(tmp / "run")]


def run(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["run", str(tmp / "sb.json"), "--config", str(tmp / "cfg.yaml"), "--out", str(tmp / "run"),
                        "--plain", *extra]


def sb_case(cid: str, path: str, value, named: str, code: int = CONFIG) -> Case:
    return Case(f"storyboard-{cid}", validate, code, named, {"sb.json": _set(BASE_SB, path, value)})


def sb_raw(cid: str, text: str | bytes, named: str) -> Case:
    return Case(f"storyboard-{cid}", validate, CONFIG, named, {"sb.json": text})


DEEP = "[" * 100_000 + "]" * 100_000
STORYBOARDS = [
    sb_case("fps-nan", "delivery.fps", NAN, "delivery.fps: nan is not a number"),
    sb_case("fps-inf", "delivery.fps", float("inf"), "delivery.fps: inf is not a number"),
    sb_case("fps-minus-inf", "delivery.fps", float("-inf"), "delivery.fps: -inf"),
    sb_case("duration-nan", "shots.0.duration_s", NAN, "shots[0].duration_s: nan"),
    sb_case("zoom-nan", "shots.1.push.zoom_end", NAN, "shots[1].push.zoom_end: nan"),
    sb_case("centre-nan", "shots.1.push.center_end.1", NAN, "shots[1].push.center_end[1]: nan"),
    sb_case("seed-inf", "shots.0.seed", float("inf"), "shots[0].seed: inf"),
    sb_case("duration-tiny", "shots.0.duration_s", 1e-9, "shots[0].duration_s: 1e-09 s at 8 fps is less than one"),
    sb_case("zoom-tiny", "shots.1.push.zoom_end", 1e-9, "shots[1].push.zoom_end: expected a number >= 0.01"),
    sb_case("zoom-start-tiny", "shots.1.push.zoom_start", 0.001, "shots[1].push.zoom_start"),
    sb_case("fps-tiny", "delivery.fps", 1e-9, "delivery.fps: expected a number >= 1"),
    sb_case("fps-high", "delivery.fps", 121, "delivery.fps"),
    sb_case("episode-float", "episode", 1.0, "episode: expected an integer"),
    sb_case("scene-float", "shots.0.scene", 1.0, "shots[0].scene: expected an integer"),
    sb_case("take-bool", "shots.0.take", True, "shots[0].take"),
    sb_case("episode-string", "episode", "1", "episode"),
    sb_case("episode-zero", "episode", 0, "episode"),
    sb_case("episode-1000", "episode", 1000, "episode"),
    sb_case("project-lower", "project", "lev", "project"),
    sb_case("project-empty", "project", "", "project"),
    sb_case("width-not-16", "delivery.width", 100, "delivery.width: expected a multiple of 16"),
    sb_case("width-huge", "delivery.width", 8192, "delivery.width"),
    sb_case("height-missing", "delivery.height", DELETE, "delivery.height: required field is missing"),
    sb_case("delivery-list", "delivery", [], "delivery"),
    sb_case("shots-empty", "shots", [], "shots"),
    sb_case("shots-object", "shots", {}, "shots"),
    sb_case("approach-unknown", "shots.0.generation_approach", "magic", "shots[0].generation_approach"),
    sb_case("seed-negative", "shots.0.seed", -1, "shots[0].seed"),
    sb_case("seed-huge", "shots.0.seed", 2**40, "shots[0].seed"),
    sb_case("duration-long", "shots.0.duration_s", 61, "shots[0].duration_s"),
    sb_case("duration-string", "shots.0.duration_s", "1", "shots[0].duration_s"),
    sb_case("keyframe-outside", "shots.0.keyframes.hero", "../outside.png", "shots[0].keyframes.hero: '../outside"),
    sb_case("keyframe-absolute", "shots.0.keyframes.hero", "/etc/hero.png", "shots[0].keyframes.hero"),
    sb_case("keyframe-missing", "shots.0.keyframes.hero", "keyframes/nope.png", "shots[0].keyframes.hero: file not"),
    sb_case("keyframe-text", "shots.0.keyframes.hero", "keyframes/text.png",
            "shots[0].keyframes.hero: text.png: not a decodable image"),
    sb_case("keyframe-truncated", "shots.0.keyframes.hero", "keyframes/truncated.png",
            "shots[0].keyframes.hero: truncated.png: not a decodable image"),
    sb_case("keyframe-empty", "shots.0.keyframes.hero", "keyframes/empty.png",
            "shots[0].keyframes.hero: empty.png: the file is empty"),
    sb_case("keyframe-gif", "shots.0.keyframes.hero", "keyframes/hero.gif", "shots[0].keyframes.hero"),
    sb_case("keyframe-backslash", "shots.0.keyframes.hero", "keyframes\\hero.png", "shots[0].keyframes.hero"),
    sb_case("keyframes-empty", "shots.0.keyframes", {}, "shots[0].keyframes"),
    sb_case("prompt-surrogate", "shots.1.hero_prompt", "\ud800", "shots[1].hero_prompt: not valid Unicode"),
    sb_case("prompt-empty", "shots.1.hero_prompt", "", "shots[1].hero_prompt"),
    sb_case("notes-deep", "shots.0.notes", json.loads("[" * 80 + "]" * 80), "nested deeper than 64"),
    sb_case("duplicate-id", "shots.1.take", 1, "shots[1]: shot id S01T01"),
    sb_case("character-undeclared", "shots.1.characters_in_shot", ["VI"], "shots[1].characters_in_shot[0]: 'VI'"),
    sb_case("hero-frame-held", "shots.0.hero_frame", 0.5, "shots[0].hero_frame"),
    sb_case("unknown-field", "shots.0.durations", 2, "unknown field 'durations' (did you mean 'duration_s'?)"),
    sb_case("push-on-static", "shots.0.push", {"zoom_end": 1.1}, "shots[0]"),
    sb_case("version-2", "version", 2, "version"),
    sb_case("negative-number", "negative_prompt", 5, "negative_prompt"),
    sb_case("model-profile-unknown", "model_profile", "nope", "model_profile: 'nope'"),
    sb_case("point-three", "shots.1.push.center_end", [0.5, 0.5, 0.5], "shots[1].push.center_end"),
    sb_case("point-outside", "shots.1.push.center_start", [1.5, 0.5], "shots[1].push.center_start[0]"),
    sb_case("characters-bad-code", "characters", {"jinx": {}}, "characters"),
    sb_case("registry-name-comma", "characters.JINX.registry", "jinx, vi", "characters.JINX.registry: 'jinx, vi' is "
            "not allowed: Name of the character in the LoRA registry"),
    sb_raw("top-list", "[]", "$: expected an object"),
    sb_raw("not-json", "{", "not valid JSON"),
    sb_raw("nan-literal", json.dumps(BASE_SB).replace('"fps": 8', '"fps": NaN'), "delivery.fps: nan"),
    sb_raw("infinity-literal", json.dumps(BASE_SB).replace('"seed": 1,', '"seed": Infinity,'), "shots[0].seed: inf"),
    sb_raw("surrogate-escape", json.dumps(BASE_SB).replace('"a rooftop"', '"\\udc00 rooftop"'),
           "shots[1].hero_prompt: not valid Unicode"),
    sb_raw("deep-100000", DEEP, "nested too deeply"),
    sb_raw("not-utf8", b'{"version": 3, "title": "\xff\xfe"}', "not UTF-8"),
    sb_raw("empty-file", "", "not valid JSON"),
    Case("storyboard-is-a-folder", lambda t: ["validate", str(t / "keyframes")], CONFIG, "cannot read storyboard"),
    Case("storyboard-missing", lambda t: ["validate", str(t / "nope.json")], CONFIG, "nope.json"),
]


def cfg_case(cid: str, text: str | bytes, named: str, code: int = CONFIG) -> Case:
    return Case(f"config-{cid}", validate, code, named, {"cfg.yaml": text})


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(  # 9**9 values once expanded
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "servers: *i\n"
CONFIGS = [
    cfg_case("not-utf8", b"output_root: \xff\xfe\n", "not UTF-8"),
    cfg_case("not-yaml", "servers: [\n", "not valid YAML"),
    cfg_case("top-list", "- a\n- b\n", "expected a mapping of settings"),
    cfg_case("retakes-nan", "retakes: {max_retakes: .nan}\n", "retakes.max_retakes: nan is not a number"),
    cfg_case("job-inf", "timeouts: {job_s: .inf}\n", "timeouts.job_s: inf is not a number"),
    cfg_case("job-negative", "timeouts: {job_s: -1}\n", "timeouts.job_s"),
    cfg_case("servers-string", "servers: http://x\n", "servers"),
    cfg_case("server-no-scheme", "servers: ['127.0.0.1:8188']\n", "servers[0]"),
    cfg_case("steps-float", "model_profiles: {wan22_sdxl: {video: {steps: 4.0}}}\n",
             "model_profiles.wan22_sdxl.video.steps: expected an integer"),
    cfg_case("split-after-steps", "model_profiles: {wan22_sdxl: {video: {split_step: 9}}}\n",
             "model_profiles.wan22_sdxl.video.split_step"),
    cfg_case("alias-bomb", BOMB, "more than 1,000,000 values"),
    cfg_case("deep", "a: " + "[" * 200 + "]" * 200 + "\n", "nested"),
    cfg_case("typo", "srevers: [http://x]\n", "unknown field 'srevers' (did you mean 'servers'?)"),
    cfg_case("gpu-unknown", "gpu: h100\n", "gpu: 'h100' has no entry in gpu_table"),
    cfg_case("gpu-table-nan", "gpu_table: {rtx4090: {wan_ref_s: .nan}}\n", "gpu_table.rtx4090.wan_ref_s: nan"),
    cfg_case("registry-missing", "lora_registry: nope.json\n", "lora_registry: cannot read"),
    cfg_case("registry-not-json", "lora_registry: bad.json\n", "lora_registry"),
    Case("config-registry-path-escapes", validate, CONFIG, "$.characters.jinx.t2i.file: '../x.safetensors' is "
         "not allowed: A LoRA file name relative to the loras folder",
         {"cfg.yaml": "lora_registry: reg.json\n",
          "reg.json": {"characters": {"jinx": {"t2i": {"file": "../x.safetensors", "trigger": "JNX"}}}}}),
    Case("config-registry-strength-nan", validate, CONFIG, "characters.jinx.t2i.strength: nan is not a number",
         {"cfg.yaml": "lora_registry: reg.json\n",
          "reg.json": '{"characters": {"jinx": {"t2i": {"file": "j.safetensors", "trigger": "J", "strength": NaN}}}}'}),
    cfg_case("overrides-unknown", "template_overrides: {nope: {}}\n", "template_overrides: unknown template"),
    cfg_case("output-root-empty", "output_root: ''\n", "output_root"),
    cfg_case("strength-rule", "character_strength_rule: loud\n", "character_strength_rule"),
    cfg_case("fps-nan", "model_profiles: {wan22_sdxl: {video: {fps: .nan}}}\n", "model_profiles.wan22_sdxl.video.fps"),
    cfg_case("profiles-list", "model_profiles: []\n", "model_profiles: expected an object"),
    Case("config-is-a-folder", lambda t: ["validate", str(t / "sb.json"), "--config", str(t / "keyframes")],
         CONFIG, "cannot read config"),
    Case("config-missing", lambda t: ["validate", str(t / "sb.json"), "--config", str(t / "nope.yaml")],
         CONFIG, "nope.yaml"),
]


def _manifest_cases() -> list[Case]:
    variants = {
        "not-json": ("{", "not valid JSON"),
        "top-list": ("[]", "$: expected an object"),
        "top-string": ('"x"', "$: expected an object"),
        "no-shots": ({k: v for k, v in BASE_MANIFEST.items() if k != "shots"}, "shots: required field is missing"),
        "shots-list": (_set(BASE_MANIFEST, "shots", []), "shots: expected an object"),
        "shot-string": (_set(BASE_MANIFEST, "shots.S01T01", "done"), "shots.S01T01: expected an object"),
        "assets-list": (_set(BASE_MANIFEST, "shots.S01T01.assets", []), "shots.S01T01.assets: expected an object"),
        "asset-path-number": (_set(BASE_MANIFEST, "shots.S01T01.assets", {"video": {"path": 5}}),
                              "shots.S01T01.assets.video.path"),
        "asset-bytes-negative": (_set(BASE_MANIFEST, "shots.S01T01.assets", {"video": {"path": "a", "bytes": -1}}),
                                 "shots.S01T01.assets.video.bytes"),
        "jobs-list": (_set(BASE_MANIFEST, "shots.S01T01.jobs", []), "shots.S01T01.jobs"),
        "attempts-object": (_set(BASE_MANIFEST, "shots.S01T01.jobs", {"S01T01-video": {"attempts": {}}}),
                            "shots.S01T01.jobs.S01T01-video.attempts"),
        "version-99": (_set(BASE_MANIFEST, "manifest_version", 99), "manifest_version 99"),
        "version-string": (_set(BASE_MANIFEST, "manifest_version", "3"), "manifest_version"),
        "run-id-missing": ({k: v for k, v in BASE_MANIFEST.items() if k != "run_id"}, "run_id"),
        "score-nan": (_set(BASE_MANIFEST, "shots.S01T01.jobs", {"J": {"attempts": [{"attempt": 1, "score": NAN}]}}),
                      "shots.S01T01.jobs.J.attempts[0].score: nan"),
        "status-unknown": (_set(BASE_MANIFEST, "shots.S01T01.status", "exploded"), "shots.S01T01.status"),
        "cut-list": (_set(BASE_MANIFEST, "episode", {"cut": []}), "episode.cut"),
        "deep": (_set(BASE_MANIFEST, "farm", json.loads("[" * 70 + "]" * 70)), "nested deeper than 64"),
        "deep-100000": (DEEP, "nested too deeply"),
        "not-utf8": (b'{"run_id": "\xff"}', "not UTF-8"),
        "surrogate": (json.dumps(BASE_MANIFEST).replace('"LEV-EP001-x"', '"\\ud800"'), "run_id: not valid Unicode"),
    }
    cases = []
    for name, (doc, named) in variants.items():
        files = {"run/run_manifest.json": doc}
        cases.append(Case(f"manifest-{name}-status", status, CONFIG, named, files))
        cases.append(Case(f"manifest-{name}-run", dry_run, CONFIG, named, files))
    return cases


def appr_case(cid: str, doc, named: str) -> Case:
    return Case(f"approvals-{cid}", status, CONFIG, named,
                {"run/run_manifest.json": BASE_MANIFEST, "run/approvals.json": doc})


APPROVALS = [
    appr_case("not-json", "{", "approvals.json line 1: not valid JSON"),
    appr_case("version-nan", '{"version": NaN, "shots": {}}', "version: nan is not a number"),
    appr_case("version-negative", {"version": -1, "shots": {}}, "version"),
    appr_case("version-float", {"version": 1.0, "shots": {}}, "version: expected an integer"),
    appr_case("shots-list", {"version": 1, "shots": []}, "shots"),
    appr_case("bad-shot-id", {"version": 1, "shots": {"S1T1": {}}}, "S1T1"),
    appr_case("verdict-unknown", {"version": 1, "shots": {"S01T01": {"keyframes": {"verdict": "maybe"}}}},
              "shots.S01T01.keyframes.verdict"),
    appr_case("extra-field", {"version": 1, "shots": {"S01T01": {"keyframes": {"verdict": "approve", "x": 1}}}},
              "unknown field 'x'"),
    appr_case("deep", {"version": 1, "shots": {}, "x": json.loads("[" * 70 + "]" * 70)}, "nested deeper than 64"),
    appr_case("deep-100000", DEEP, "nested too deeply"),
    appr_case("old-bad-verdict", {"S01T01": "maybe"}, "S01T01"),
    appr_case("top-list", [], "$"),
    appr_case("note-surrogate", '{"version": 1, "shots": {"S01T01": {"keyframes": {"verdict": "approve", '
                                '"note": "\\ud800"}}}}', "shots.S01T01.keyframes.note: not valid Unicode"),
    appr_case("not-utf8", b'{"version": 1, "shots": {"\xff": 1}}', "approvals.json"),
]


def _fault(exc_errno: int, target: str):
    """Injects ``OSError(errno)`` on the first write of the run manifest (or of any file)."""
    def patch(monkeypatch, tmp: Path) -> None:
        import driver.outputs.manifest as manifest

        def fail(*a, **k):
            raise OSError(exc_errno, __import__("os").strerror(exc_errno), str(tmp / "run" / target))
        monkeypatch.setattr(manifest, "atomic_write_json", fail)
    return patch


def _lock_held(monkeypatch, tmp: Path) -> None:
    ctx = folder_lock(tmp / "run", command="driver run other.json")
    ctx.__enter__()
    monkeypatch.setattr(_lock_held, "held", ctx, raising=False)  # released when the test's monkeypatch undoes


COMMAND_LINES = [
    Case("cli-server-no-scheme", run("--server", "127.0.0.1:8188"), CONFIG, "server '127.0.0.1:8188'"),
    Case("cli-server-ipv6-open", run("--server", "http://[::1"), CONFIG, "server 'http://[::1'"),
    Case("cli-server-port", run("--server", "http://h:99999"), CONFIG, "server 'http://h:99999'"),
    Case("cli-server-ftp", run("--server", "ftp://h"), CONFIG, "server 'ftp://h'"),
    Case("cli-server-empty", run("--server", ""), CONFIG, "server ''"),
    Case("cli-out-is-a-file", run(), CONFIG, "--out:", {"run": "a file"}),
    Case("cli-output-root-is-a-file", lambda t: ["run", str(t / "sb.json"), "--config", str(t / "cfg.yaml")],
         CONFIG, "output_root:", {"cfg.yaml": "output_root: afile\nservers: [http://127.0.0.1:9]\n",
                                  "afile": "x"}),
    Case("cli-max-retakes", run("--max-retakes", "-1"), CONFIG, "--max-retakes"),
    Case("cli-only-unknown", run("--only", "S99T99", "--dry-run"), CONFIG, "--only: no shot S99T99"),
    Case("cli-farm-unknown", run("--farm", "aws"), ARGPARSE, None),
    Case("cli-endpoint-and-server", run("--endpoint", "abc", "--server", "http://h:1"), CONFIG, "--endpoint"),
    Case("cli-stage-unknown", run("--stage", "final"), ARGPARSE, None),
    Case("cli-max-retakes-text", run("--max-retakes", "two"), ARGPARSE, None),
    Case("cli-no-storyboard", lambda t: ["run"], ARGPARSE, None),
    Case("cli-status-not-a-run", lambda t: ["status", str(t / "keyframes")], CONFIG, "holds no run_manifest.json"),
    Case("cli-status-a-file", lambda t: ["status", str(t / "sb.json")], CONFIG, "holds no run_manifest.json"),
    Case("cli-run-folder-locked", run(), LOCKED, "pid", patch=_lock_held),
    Case("fault-disk-full", run(), DISK_FULL, "run_manifest.json: No space left on device",
         patch=_fault(errno.ENOSPC, "run_manifest.json")),
    Case("fault-read-only", run(), NOT_WRITABLE, "run_manifest.json: Read-only file system",
         patch=_fault(errno.EROFS, "run_manifest.json")),
    Case("fault-permission", run(), NOT_WRITABLE, "Permission denied", patch=_fault(errno.EACCES, "x")),
    Case("fault-other-oserror", run(), 1, "Input/output error", patch=_fault(errno.EIO, "x")),
]

CASES = STORYBOARDS + CONFIGS + _manifest_cases() + APPROVALS + COMMAND_LINES


def test_at_least_100_cases_of_every_kind():
    kinds = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) >= 100 and {"storyboard", "config", "manifest", "approvals", "cli", "fault"} <= kinds


def _write_base(tmp: Path) -> None:
    (tmp / "keyframes").mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp / "keyframes" / "hero.png")
    png = (tmp / "keyframes" / "hero.png").read_bytes()
    (tmp / "keyframes" / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp / "keyframes" / "text.png").write_text("not an image\n")
    (tmp / "keyframes" / "empty.png").write_bytes(b"")
    (tmp / "keyframes" / "hero.gif").write_bytes(png)
    (tmp / "outside.png").write_bytes(png)
    (tmp / "bad.json").write_text("[")
    (tmp / "sb.json").write_text(json.dumps(BASE_SB))
    (tmp / "cfg.yaml").write_text(BASE_CFG)


def _write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_text(json.dumps(content), encoding="utf-8", errors="surrogatepass")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_input_gets_its_exit_code_and_names_the_culprit(case, tmp_path, monkeypatch, caplog, capsys):
    _write_base(tmp_path)
    for name, content in case.files.items():
        _write(tmp_path / name, content)
    if case.patch:
        case.patch(monkeypatch, tmp_path)
    try:
        try:
            code = main(case.argv(tmp_path))
        except SystemExit as exc:  # argparse's own usage error (exit 2, usage printed, no traceback)
            code = exc.code
    finally:
        held = getattr(_lock_held, "held", None)
        if held is not None:
            held.__exit__(None, None, None)
            _lock_held.held = None
    out = capsys.readouterr()
    text = caplog.text + out.err + out.out
    assert "Traceback" not in text
    assert code == case.code, text[-2000:]
    if case.named:
        assert case.named in text, text[-2000:]


def test_a_clean_base_is_valid(tmp_path, capsys):
    """The mutations above start from inputs the driver accepts."""
    _write_base(tmp_path)
    assert main(validate(tmp_path)) == 0
    _write(tmp_path / "run" / "run_manifest.json", BASE_MANIFEST)
    assert main(status(tmp_path)) == 0 and main(dry_run(tmp_path)) == 0
