"""Detection rate on negatives and false-alarm rate on positives of every quality gate,
on real WAN clips (comfyui-workflow-templates 0.1.95 WebPs) and negatives built from them
at the magnitudes that matter (a benchmark, not a test; target 100 % / 0 %).

    cd /work/main && .venv/bin/python -m benchmarks.eval_gates [--clips N] [--frames N] [--margins]

Positives: the 31 multi-frame WAN outputs of ``calibration.WAN_CLIPS`` (the real flicker
template ``wan2.1_flf2v_720_f16-1.webp`` is a negative). Negatives, per clip:

* artifact: a black frame / a flat grey frame / the frame at +1 stop (blown) / at -1.5
  stops (crushed) inserted mid-clip, one frame blurred (Gaussian sigma 1 px), a NaN pixel,
  the clip frozen (first frame held, fresh decode noise sigma 1). Detected = the gate
  fails *on that frame* (frozen: fails as frozen);
* temporal: +4 % brightness on every 4th frame, plus the real flickering template;
* keyframe fidelity (keyframes = the clip's ends through JPEG 85 + blur sigma 0.6, never
  the frames unchanged): the last frame drifted by delta-E 3 in L, a, b or a+b, the first
  frame shifted 5 %, the last frame replaced by another clip's (a dropped end keyframe);
* seam (the clip split at its middle): a luma step of +3, -3, +4/255 from the seam on, and
  a splice of another clip's frame at the seam.

The identity gate is not evaluated: no CLIP-vision or ArcFace weights exist offline.
``--margins`` also prints the closest calls (the measured values behind each default).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from anime_pipeline.core.contracts import CUT, MOTION, MotionLabels
from anime_pipeline.core.imaging import from_uint8
from anime_pipeline.core.quality import artifacts, fidelity, seam, temporal
from devkit import calibration as cal


def artifact_cases(c: np.ndarray, other: np.ndarray):
    k = len(c) // 2
    nan = from_uint8(c)
    nan[k, 5, 5, 0] = float("nan")
    yield "black frame", cal.insert_frame(c, k, cal.black_frame(c[0])), k
    yield "blank frame", cal.insert_frame(c, k, cal.blank_frame(c[0])), k
    yield "blown frame (+1 stop)", cal.insert_frame(c, k, cal.exposure(c[k], 1.0)), k
    yield "crushed frame (-1.5 stops)", cal.insert_frame(c, k, cal.exposure(c[k], -1.5)), k
    yield "blurred frame (sigma 1)", cal.replace_frame(c, k, cal.blur(c[k], 1.0)), k
    yield "NaN pixel", nan, k
    yield "frozen clip", cal.frozen(c), None


def eval_artifact(clips, others, out, margins):
    for name, c in clips.items():
        r = artifacts.artifact_gate(from_uint8(c))
        out["artifact"]["pos"].append((name, r.passed))
        margins["artifact: max |exposure jump| on positives"].append(r.metrics["max_exposure_jump"])
        margins["artifact: min sharpness ratio on positives"].append(r.metrics["min_sharpness_ratio"])
        margins["artifact: min of largest motion on positives"].append(r.metrics["max_motion"])
        margins["artifact: min sharpness on positives"].append(r.metrics["min_median_max"]["sharpness"][0])
        margins["artifact: min luma std on positives"].append(r.metrics["min_median_max"]["luma_std"][0])
        margins["artifact: max dark fraction on positives"].append(r.metrics["min_median_max"]["dark_fraction"][2])
        for kind, clip, k in artifact_cases(c, others[name]):
            frames = clip if not isinstance(clip, np.ndarray) else from_uint8(clip)
            r = artifacts.artifact_gate(frames)
            hit = (not r.passed) and (r.metrics["frozen"] if k is None else k in r.failed_frames)
            out["artifact"]["neg"][kind].append((name, hit))


def labels_for(name: str, n: int) -> MotionLabels | None:
    cuts = cal.KNOWN_CUTS.get(name)
    if not cuts:
        return None
    return MotionLabels(tuple(CUT if i in cuts else MOTION for i in range(n - 1)), n)


def eval_temporal(clips, others, out, margins):
    for name, c in clips.items():
        r = temporal.temporal_gate(from_uint8(c), labels=labels_for(name, len(c)))
        out["temporal"]["pos"].append((name, r.passed))
        margins["temporal: max flicker on positives"].append(r.metrics["max_flicker"])
        margins["temporal: median warp error on positives"].append(r.metrics["median_warp_error"])
        margins["temporal: max warp error on positives"].append(r.metrics["max_warp_error"])
        f = temporal.temporal_gate(from_uint8(cal.brightness_flicker(c)), labels=labels_for(name, len(c)))
        out["temporal"]["neg"]["+4 % every 4th frame"].append((name, not f.passed))
        margins["temporal: min of max flicker on +4 % negatives"].append(f.metrics["max_flicker"])
    real = np.array(cal.template_clip(cal.FLICKER_CLIP))
    r = temporal.temporal_gate(from_uint8(real))
    out["temporal"]["neg"]["real flicker template"].append((cal.FLICKER_CLIP, not r.passed))


def eval_fidelity(clips, others, out, margins):
    for name, c in clips.items():
        ks, ke = from_uint8(cal.lossy_round_trip(c[0])), from_uint8(cal.lossy_round_trip(c[-1]))
        r = fidelity.keyframe_fidelity_gate(from_uint8(c), ks, ke)
        out["keyframe_fidelity"]["pos"].append((name, r.passed))
        for end in ("start", "end"):
            margins["fidelity: min ssim on positives"].append(r.metrics[end]["ssim"])
            margins["fidelity: max mean shift on positives"].append(r.metrics[end]["mean_shift"])
            margins["fidelity: max delta-E on positives"].append(r.metrics[end]["delta_e"])
        last = len(c) - 1
        cases = {f"delta-E 3 drift ({d})": cal.replace_frame(c, last, cal.lab_shift(c[-1], *v))
                 for d, v in {"L": (3, 0, 0), "a": (0, 3, 0), "b": (0, 0, 3), "a+b": (0, -2.12, -2.12)}.items()}
        cases["5 % shift (first frame)"] = cal.replace_frame(c, 0, cal.translate(c[0], 0.05))
        cases["dropped end keyframe"] = cal.replace_frame(c, last, cal.fit(others[name][-1], *c.shape[1:3]))
        for kind, clip in cases.items():
            r = fidelity.keyframe_fidelity_gate(from_uint8(clip), ks, ke)
            bad = 0 if kind.startswith("5 %") else last
            out["keyframe_fidelity"]["neg"][kind].append((name, bad in r.failed_frames))
            if kind.startswith("delta-E"):
                m = r.metrics["end"]
                margins["fidelity: min mean shift on delta-E 3 drifts"].append(m["mean_shift"])
                margins["fidelity: min delta-E on delta-E 3 drifts"].append(m["delta_e"])


def eval_seam(clips, others, out, margins):
    for name, c in clips.items():
        s = len(c) // 2
        r = seam.seam_gate(from_uint8(c), [s])
        out["seam"]["pos"].append((name, r.passed))
        m = r.metrics["seams"][0]
        margins["seam: max |luma jump| on positives"].append(abs(m["luma_jump"]))
        margins["seam: max warp error / neighbours on positives"].append(m["warp_error"] / max(m["neighbour_warp_error"], 1e-9))
        cases = {f"luma step {d:+g}/255": cal.luma_step(c, s, d) for d in (3.0, -3.0, 4.0)}
        o = cal.fit(others[name][0], *c.shape[1:3])
        cases["splice of another clip"] = np.concatenate([c[:s], o[None], c[s + 1:]])
        for kind, clip in cases.items():
            r = seam.seam_gate(from_uint8(clip), [s])
            out["seam"]["neg"][kind].append((name, not r.passed))
            if kind.startswith("luma"):
                margins["seam: min |luma jump| on 3-4/255 steps"].append(abs(r.metrics["seams"][0]["luma_jump"]))


def pct(hits) -> str:
    return f"{100 * sum(hits) / len(hits):5.1f} %" if hits else "  n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=len(cal.WAN_CLIPS), help="use the first N calibration clips")
    ap.add_argument("--frames", type=int, default=0, help="use only the first N frames of each clip (0 = all)")
    ap.add_argument("--margins", action="store_true", help="print the closest calls behind each default")
    ap.add_argument("--gates", default="artifact,temporal,keyframe_fidelity,seam",
                    help="comma-separated subset of gates to evaluate")
    args = ap.parse_args()
    try:
        names = cal.WAN_CLIPS[:args.clips]
        clips = {n: np.array(cal.template_clip(n)[:args.frames or None]) for n in names}
    except FileNotFoundError as exc:
        sys.exit(f"eval_gates: {exc}")
    others = {n: clips[names[(i + 7) % len(names)]] for i, n in enumerate(names)}
    out = defaultdict(lambda: {"pos": [], "neg": defaultdict(list)})
    margins = defaultdict(list)
    timings = {}
    chosen = set(args.gates.split(","))
    for gate, fn in (("artifact", eval_artifact), ("temporal", eval_temporal),
                     ("keyframe_fidelity", eval_fidelity), ("seam", eval_seam)):
        if gate not in chosen:
            continue
        t0 = time.perf_counter()
        fn(clips, others, out, margins)
        timings[gate] = time.perf_counter() - t0
        print(f"... {gate} evaluated in {timings[gate]:.0f} s", file=sys.stderr)

    print(f"Quality gates on {len(clips)} real WAN clips (comfyui-workflow-templates), default thresholds\n")
    print(f"{'gate':<18} {'set':<30} {'clips':>5} {'flagged':>8} {'rate':>8}")
    print("-" * 74)
    for gate, res in out.items():
        fa = [not ok for _, ok in res["pos"]]
        print(f"{gate:<18} {'positives (false alarms)':<30} {len(fa):>5} {sum(fa):>8} {pct(fa):>8}")
        for kind, hits in res["neg"].items():
            flags = [h for _, h in hits]
            print(f"{'':<18} {kind:<30} {len(flags):>5} {sum(flags):>8} {pct(flags):>8}")
        missed = [f"{kind}: {n}" for kind, hits in res["neg"].items() for n, h in hits if not h]
        alarms = [n for n, ok in res["pos"] if not ok]
        for line in alarms:
            print(f"{'':<18}   false alarm: {line}")
        for line in missed:
            print(f"{'':<18}   missed: {line}")
    print(f"{'identity':<18} not evaluated: no CLIP-vision / ArcFace weights offline")
    if args.margins:
        print("\nClosest calls (what the defaults were set from):")
        for key, values in margins.items():
            agg = min(values) if key.split(":")[1].split()[0] == "min" else max(values)
            print(f"  {key:<62} {agg:.4f}")


if __name__ == "__main__":
    main()
