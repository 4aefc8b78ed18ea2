"""Manifest save cost, version 1 (every submitted workflow inline) against version 2
(each workflow in its own file beside the outputs), in one run:

    python -m benchmarks.bench_manifest [--shots 300] [--workflow-kb 32] [--long-prompt-mb 0]

Builds the manifest of a run of ``--shots`` shots (a keyframe job and a video job each,
one attempt per job, workflows of ``--workflow-kb`` KB; ``--long-prompt-mb`` puts a prompt
of that size in every video workflow) and times ``Manifest.save`` at the start, middle
and end of the run, as the scheduler saves after every job. Prints the manifest's size
and the median save time for both shapes."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from driver.files import FileRecord, atomic_write_json
from driver.outputs.manifest import Manifest
from driver.outputs.records import AttemptRecord, ManifestData, Status


def workflow(kb: int, prompt_mb: float) -> dict:
    nodes = {str(i): {"class_type": "KSamplerAdvanced", "inputs": {"seed": i, "text": "x" * 200},
                      "_meta": {"title": f"Node {i}"}} for i in range(max(1, kb * 1024 // 300))}
    if prompt_mb:
        nodes["p"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "y" * int(prompt_mb * 1e6)}}
    return nodes


def attempt(i: int, wf: dict, inline: bool, folder: Path) -> AttemptRecord:
    att = AttemptRecord(attempt=1, seed=i, prompt_id=f"p{i}", server="http://s:8188", status=Status.DONE,
                        outputs=[FileRecord(path=f"attempts/a{i}.mp4", sha256="0" * 64, bytes=1)])
    if inline:
        att["workflow"] = wf
    else:
        path = folder / "attempts" / f"j{i}_a1.workflow.json"
        atomic_write_json(path, wf, compact=True)  # written once, when the attempt is submitted
        att["workflow_file"] = FileRecord(path=path.relative_to(folder).as_posix(), sha256="0" * 64,
                                          bytes=path.stat().st_size)
    return att


def measure(shots: int, kb: int, prompt_mb: float, inline: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "attempts").mkdir()
        m = Manifest(folder / "run_manifest.json", ManifestData(manifest_version=2, run_id="r", shots={}))
        kf, video = workflow(kb // 4, 0), workflow(kb, prompt_mb)
        times: dict[str, list[float]] = {}
        for s in range(shots):
            jobs = {f"S{s}-kf": {"attempts": [attempt(2 * s, kf, inline, folder)]},
                    f"S{s}-video": {"attempts": [attempt(2 * s + 1, video, inline, folder)]}}
            m.data["shots"][f"S{s}"] = {"status": Status.DONE, "jobs": jobs}  # type: ignore[typeddict-item]
            phase = "start" if s < 5 else "middle" if abs(s - shots // 2) < 3 else "end" if s >= shots - 5 else ""
            if phase:
                for _ in range(3):
                    t0 = time.perf_counter()
                    m.save()
                    times.setdefault(phase, []).append(time.perf_counter() - t0)
        size = (folder / "run_manifest.json").stat().st_size
    return {"bytes": size, **{k: statistics.median(v) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=300)
    ap.add_argument("--workflow-kb", type=int, default=32)
    ap.add_argument("--long-prompt-mb", type=float, default=0.0)
    args = ap.parse_args()
    print(f"{args.shots} shots, 2 jobs each, {args.workflow_kb} KB workflows, long prompt {args.long_prompt_mb} MB")
    for label, inline in (("v1 inline workflows", True), ("v2 workflow files", False)):
        r = measure(args.shots, args.workflow_kb, args.long_prompt_mb, inline)
        print(f"{label:22s} manifest {r['bytes'] / 1e6:8.2f} MB; save: start {r['start'] * 1e3:7.2f} ms, "
              f"middle {r['middle'] * 1e3:7.2f} ms, end {r['end'] * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
