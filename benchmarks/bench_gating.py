"""Cut / hold / motion gating: accuracy and speed side by side in one run (a benchmark, not a test).

    cd /work/main && .venv/bin/python -m benchmarks.bench_gating [--frames 96,240] [--repeats 7] [--tune] [--speed-only] [--upscale 4]

1. Accuracy on the frozen ground truth (devkit/groundtruth, held-out clips, every variant):
   cut and hold precision/recall and motion-labelled-hold rate for
   * ours: ``core.motion`` with the node defaults (fixed holds) and ``adaptive_holds``;
   * reference: the classifier of gating-and-quality.md (scene > 0.2 and hist > 0.15 on a
     128 px thumbnail + half-resolution YUV, holds blkmax < 3, adaptive max(3, 1.5 p20));
   * PySceneDetect 0.7.2 ``ContentDetector`` with its defaults, through ``SceneManager``
     (default auto-downscale) reading the frames from memory; for context also with
     ``min_scene_len=1`` (its default 15 frames suppresses cuts of the short shots);
   * ffmpeg ``scdet`` (defaults, threshold 10) and ``select`` scene score > 0.4 / > 0.2, via PyAV.
   Peers detect cuts only; their hold columns are empty.
2. Speed at 1280x720 on the same ``uint8`` frames in memory (held-out frames upscaled;
   decode excluded), for each clip length in ``--frames`` (a short clip shows thread
   start-up and load imbalance, a longer one the sustained rate): frames per second
   and cut P/R on those frames; plus our
   ``AP_MotionGate`` node end to end on a ComfyUI float IMAGE tensor. Methods run
   ``--repeats`` times, interleaved; best and median wall time and median CPU time.
3. ``--tune``: the measurements behind the default thresholds, on the tuning clips only.

``--upscale 4`` runs 1. and 3. on the same compositions enlarged 4x (1280x960) before the
noise: the analysis path of large frames (thumbnails read one row per band), which the
frozen 320x240 ground truth never takes.

Needs the ``bench`` extra (scenedetect, opencv-python at the headless build's version).
"""

from __future__ import annotations

import argparse
import fractions
import os
import sys
import time

import cv2
import numpy as np


from anime_pipeline.core import motion
from anime_pipeline.core.imaging import from_uint8
from anime_pipeline.nodes.motion import MotionGate
from devkit.groundtruth import build as gt
from benchmarks.pyav_filters import run_chain

# -- peers --------------------------------------------------------------------------------


class _MemoryCapture:
    """The slice of cv2.VideoCapture that PySceneDetect's VideoCaptureAdapter uses, over BGR
    frames in memory (the channel order OpenCV decoders deliver)."""

    def __init__(self, frames: np.ndarray, fps: float = 24.0):
        self.frames, self.i, self.fps = frames, 0, fps

    def isOpened(self):  # noqa: N802 (cv2 API)
        return True

    def get(self, prop):
        n, h, w = self.frames.shape[:3]
        return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h, cv2.CAP_PROP_FPS: self.fps,
                cv2.CAP_PROP_FRAME_COUNT: n, cv2.CAP_PROP_POS_FRAMES: self.i}.get(prop, 0)

    def grab(self):
        if self.i >= len(self.frames):
            return False
        self.i += 1
        return True

    def retrieve(self):
        return True, self.frames[self.i - 1]

    def read(self):
        return self.retrieve() if self.grab() else (False, None)


def to_bgr(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames[..., ::-1])


def pyscenedetect_cuts(frames_bgr: np.ndarray, **detector) -> np.ndarray:
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.backends.opencv import VideoCaptureAdapter

    manager = SceneManager()
    manager.add_detector(ContentDetector(**detector))
    manager.detect_scenes(VideoCaptureAdapter(_MemoryCapture(frames_bgr), frame_rate=24.0))
    cuts = np.zeros(len(frames_bgr) - 1, bool)
    for scene in manager.get_scene_list()[1:]:
        cuts[scene[0].frame_num - 1] = True  # a scene starting at frame f: cut on interval f-1
    return cuts


def _ffmpeg(frames: np.ndarray, chain: list[tuple[str, str]]) -> list[dict]:
    """Run RGB frames through a libavfilter chain; metadata of each output frame, by input index."""
    n, h, w = frames.shape[:3]
    meta = [{} for _ in range(n)]
    for out in run_chain(frames, chain, width=w, height=h, time_base=fractions.Fraction(1, 24)):
        meta[out.pts] = dict(out.metadata)
    return meta


def ffmpeg_scdet_cuts(frames):
    meta = _ffmpeg(frames, [("scdet", "")])
    return np.array(["lavfi.scd.time" in m for m in meta[1:]])


def ffmpeg_scene_scores(frames):
    meta = _ffmpeg(frames, [("format", "yuv420p"), ("select", "gte(scene,0)")])
    return np.array([float(m.get("lavfi.scene_score", 0.0)) for m in meta[1:]])


# -- the reference classifier (gating-and-quality.md sec. 0) -----------------------------------


def reference_labels(frames: np.ndarray, adaptive: bool = False) -> np.ndarray:
    n = len(frames)
    blk, hist, mafd = np.zeros(n - 1), np.zeros(n - 1), np.zeros(n - 1)
    prev = None
    for i, f in enumerate(frames):
        h, w = f.shape[:2]
        th = cv2.resize(f, (128, max(8, round(h * 128 / w))), interpolation=cv2.INTER_AREA)
        y = cv2.cvtColor(th, cv2.COLOR_RGB2GRAY).astype(np.float32)
        hh = np.histogram(y, 32, (0, 256))[0] / y.size
        yuv = cv2.cvtColor(cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YUV)
        cur = (y, hh, yuv.astype(np.int16))
        if prev is not None:
            d = np.abs(cur[0] - prev[0])
            bh, bw = d.shape[0] // 8 * 8, d.shape[1] // 8 * 8
            blk[i - 1] = d[:bh, :bw].reshape(bh // 8, 8, bw // 8, 8).mean(axis=(1, 3)).max()
            hist[i - 1] = 0.5 * np.abs(cur[1] - prev[1]).sum()
            mafd[i - 1] = np.abs(cur[2] - prev[2]).mean()
        prev = cur
    scene = np.minimum(mafd, np.abs(np.diff(mafd, prepend=0.0))) / 100
    cut = (scene > 0.2) & (hist > 0.15)
    for i in np.flatnonzero(cut):  # suppress a second cut within 2 frames (flash)
        if cut[max(0, i - 2):i].any():
            cut[i] = False
    limit = 3.0
    if adaptive and (~cut).any():
        limit = max(3.0, 1.5 * float(np.percentile(blk[~cut], 20)))
    return np.where(cut, "cut", np.where(blk < limit, "hold", "motion"))


# -- scoring ------------------------------------------------------------------------------------


def pr(pred, truth):
    tp = int((pred & truth).sum())
    return tp / max(int(pred.sum()), 1), tp / max(int(truth.sum()), 1)


def row(name, truth, labels=None, cuts=None):
    cuts = labels == "cut" if cuts is None else cuts
    cp, cr = pr(cuts, truth == "cut")
    f1 = 2 * cp * cr / max(cp + cr, 1e-9)
    cells = [f"{name:32s}", f"{cp:5.3f} {cr:5.3f} {f1:5.3f}"]
    if labels is not None and (truth == "hold").any():
        hp, hr = pr(labels == "hold", truth == "hold")
        cells.append(f"{hp:5.3f} {hr:5.3f}")
    else:
        cells.append(f"{'-':>5s} {'-':>5s}")
    if labels is not None:
        m = truth == "motion"
        cells.append(f"{((labels == 'hold') & m).sum() / m.sum():6.3f}")
    else:
        cells.append(f"{'-':>6s}")
    return "  ".join(cells), f1


def ours(frames, adaptive=False):
    return np.array(motion.classify(frames, motion.Thresholds(adaptive_holds=adaptive)).labels)


def accuracy(split: str, upscale: int = 1) -> None:
    w, h = gt.FRAME_SIZE
    size = f"{w * upscale}x{h * upscale}" + (f", enlarged {upscale}x before the noise" if upscale > 1 else "")
    print(f"\n== Accuracy on the {split} ground truth (frozen; {size}) ==")
    print(f"{'method':32s}  cut P  cut R cut F1  hold P hold R  motion->hold")
    for variant in gt.VARIANTS:
        seq = gt.build(split, variant, upscale=upscale)
        truth = np.array(seq.labels)
        print(f"-- {variant}: {len(seq.frames)} frames, {(truth == 'cut').sum()} cuts, "
              f"{(truth == 'hold').sum()} holds, {(truth == 'motion').sum()} motion")
        print(row("ours (default, fixed holds)", truth, ours(seq.frames))[0])
        print(row("ours (adaptive_holds)", truth, ours(seq.frames, True))[0])
        print(row("reference (fixed)", truth, reference_labels(seq.frames))[0])
        print(row("reference (adaptive)", truth, reference_labels(seq.frames, True))[0])
        bgr = to_bgr(seq.frames)
        print(row("PySceneDetect ContentDetector", truth, cuts=pyscenedetect_cuts(bgr))[0])
        print(row("  same, min_scene_len=1", truth, cuts=pyscenedetect_cuts(bgr, min_scene_len=1))[0])
        print(row("ffmpeg scdet (defaults)", truth, cuts=ffmpeg_scdet_cuts(seq.frames))[0])
        scene = ffmpeg_scene_scores(seq.frames)
        print(row("ffmpeg select scene > 0.4", truth, cuts=scene > 0.4)[0])
        print(row("ffmpeg select scene > 0.2", truth, cuts=scene > 0.2)[0])


def speed_frames(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_frames`` held-out frames at 1280x720 and their cut intervals."""
    seq = gt.build("heldout", "lossless")
    truth = np.array(seq.labels[: n_frames - 1]) == "cut"
    src = seq.frames[:n_frames]
    return np.stack([cv2.resize(gt.cover_resize(f, (320, 180)), (1280, 720), interpolation=cv2.INTER_CUBIC)
                     for f in src]), truth


def speed(big: np.ndarray, truth: np.ndarray, repeats: int) -> None:
    images = from_uint8(big)
    bgr = to_bgr(big)  # PySceneDetect reads BGR, as from an OpenCV decoder (prepared untimed)
    node, defaults = MotionGate(), motion.Thresholds().as_dict()

    def single_worker(f):
        workers, motion.WORKERS = motion.WORKERS, 1
        try:
            return ours(f) == "cut"
        finally:
            motion.WORKERS = workers

    runs = [
        (f"ours (core.motion, {motion.WORKERS} workers)", lambda f: ours(f) == "cut"),
        ("ours, 1 worker", single_worker),
        ("ours (adaptive_holds)", lambda f: ours(f, True) == "cut"),
        ("reference classifier", lambda f: reference_labels(f) == "cut"),
        ("PySceneDetect ContentDetector", lambda f: pyscenedetect_cuts(bgr[: len(f)])),
        ("ffmpeg scdet (defaults)", ffmpeg_scdet_cuts),
        ("ffmpeg select scene > 0.4", lambda f: ffmpeg_scene_scores(f) > 0.4),
        ("AP_MotionGate node (float IMAGE)",
         lambda f: np.array(node.gate(images[: len(f)], **defaults)[0].labels) == "cut"),
    ]
    # Every method runs `repeats` times, the methods interleaved round by round, so a burst
    # of load from elsewhere hits all of them alike; best and median wall time are reported.
    walls = {name: [] for name, _ in runs}
    cpus = {name: [] for name, _ in runs}
    cuts = {}
    for name, fn in runs:
        fn(big[:8])  # warm-up: OpenCV/libav initialisation, thread pools
    for _ in range(repeats):
        for name, fn in runs:
            t, cpu = time.perf_counter(), time.process_time()
            cuts[name] = fn(big)
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(time.process_time() - cpu)  # all threads of this process
    print(f"\n== Speed at 1280x720: {len(big)} uint8 frames in memory ({truth.sum()} cuts), "
          f"{os.cpu_count()} cores, best / median of {repeats} interleaved runs ==")
    print(f"{'method':34s}  cut P  cut R cut F1  frames/s best  median  CPU ms/frame")
    fps = {}
    for name, _ in runs:
        cp, cr = pr(cuts[name], truth)
        fps[name] = len(big) / min(walls[name])
        print(f"{name:34s}  {cp:5.3f} {cr:5.3f} {2 * cp * cr / max(cp + cr, 1e-9):5.3f}  {fps[name]:13.1f}"
              f"  {len(big) / np.median(walls[name]):6.1f}  {np.median(cpus[name]) / len(big) * 1000:12.2f}")
    peer, ours_name = "PySceneDetect ContentDetector", runs[0][0]
    median = {name: np.median(walls[name]) for name in (peer, ours_name, "ours, 1 worker")}
    print(f"ours / PySceneDetect speed: best runs {fps[ours_name] / fps[peer]:.2f}x with {motion.WORKERS} workers "
          f"({fps['ours, 1 worker'] / fps[peer]:.2f}x with 1), medians {median[peer] / median[ours_name]:.2f}x "
          f"({median[peer] / median['ours, 1 worker']:.2f}x); load average now {os.getloadavg()[0]:.2f}")


def tune_report(upscale: int = 1) -> None:
    """Where the defaults come from (tuning clips only)."""
    print(f"\n== Tuning split{f' enlarged {upscale}x' if upscale > 1 else ''}: score ranges behind the defaults ==")
    for variant in gt.VARIANTS:
        seq = gt.build("tune", variant, upscale=upscale)
        truth = np.array(seq.labels)
        s = motion.interval_scores(seq.frames, motion.Thresholds(cut_color=2.0, adaptive_holds=True))
        cut = truth == "cut"
        colour, resid = s["color_shift"], np.nan_to_num(s["unexplained"])
        print(f"-- {variant}: color_shift cuts min {colour[cut].min():.2f} / others max {colour[~cut].max():.2f};"
              f" unexplained cuts min {resid[cut].min():.3f} / others with color_shift >= 5 max "
              f"{resid[~cut & (colour >= 5)].max(initial=0):.3f}")
        dc = s["detail_change"]
        hold, mot = truth == "hold", truth == "motion"
        held = f"holds max {dc[hold].max():.2f} p99 {np.percentile(dc[hold], 99):.2f}; " if hold.any() else ""
        print(f"   detail_change: {held}motion min {dc[mot].min():.2f} p1 {np.percentile(dc[mot], 1):.2f};"
              f" noise floor (p{motion.NOISE_FLOOR_PERCENTILE} median) "
              f"{np.percentile(s['median_change'][~cut], motion.NOISE_FLOOR_PERCENTILE):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default="96,240",
                        help="clip lengths (frames, comma-separated) for the 1280x720 speed runs; \"\" for none")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method in the speed run")
    parser.add_argument("--tune", action="store_true", help="also print the tuning-split measurements")
    parser.add_argument("--speed-only", action="store_true", help="skip the accuracy tables")
    parser.add_argument("--upscale", type=int, default=1,
                        help="enlarge the ground truth this many times before the noise (accuracy, --tune)")
    args = parser.parse_args()
    if gt.missing_reason():
        sys.exit(gt.missing_reason())
    cv2.setNumThreads(2)
    if args.tune:
        tune_report(args.upscale)
    if not args.speed_only:
        accuracy("heldout", args.upscale)
    lengths = [int(x) for x in args.frames.split(",") if x]  # --frames "": accuracy only
    if lengths:
        big, truth = speed_frames(max(lengths))
        for n_frames in lengths:
            speed(big[:n_frames], truth[: n_frames - 1], args.repeats)


if __name__ == "__main__":
    main()
