"""Command line of ``python -m driver enhance`` (parsing only; the work is in :mod:`.batch`).

    python -m driver enhance INPUT --out OUTPUT [options]
    python -m driver enhance INPUT INPUT ... | FOLDER --out-dir DIR [options]

Backends as for ``driver run``: ``--server URL`` (repeated: a pool), the config's
``servers``, ``--farm runpod --pods N``, ``--endpoint runpod:ID``; with none answering, the
local or managed ComfyUI (``--comfyui DIR``, ``COMFYUI_DIR``)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from anime_pipeline.core.retime import GUARD_THRESHOLD
from driver.config import load_config
from driver.farm import cli as farm_cli

from . import batch
from .errors import OptionsInvalid
from .options import CONTAINERS, PRESETS, Options

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = frozenset({".mkv", ".mp4", ".mov", ".avi", ".webm", ".m4v", ".ts", ".m2ts", ".mpg", ".mpeg"})


def add_command(sub, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("enhance", parents=[common], help="anime-safe frame-rate conversion and upscaling of video "
                                                         "files (rerun the same command to resume)")
    e.add_argument("input", type=Path, nargs="+", help="video file(s), or a folder of them")
    e.add_argument("--out", type=Path, help="output video (.mkv, .mp4 or .mov) of a single input")
    e.add_argument("--out-dir", type=Path, metavar="DIR", help="outputs of several inputs: DIR/<input name> "
                                                               "(work folders DIR/<stem>.enhance)")
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, help="output frame rate, e.g. 48 or 23.976")
    rate.add_argument("--fps-multiplier", type=float, help="output rate = input rate x this (default 2)")
    e.add_argument("--scale", type=int, default=1, help="upscale factor 1-4 (the upscale model when configured, "
                                                        "else a lanczos resize)")
    e.add_argument("--preset", choices=list(PRESETS), default="anime-clean")
    e.add_argument("--clip", metavar="START-END", help="only this range, e.g. 00:10:00-00:10:20 (video, audio and "
                                                       "subtitles alike)")
    e.add_argument("--server", action="append", default=[], metavar="URL",
                   help="ComfyUI base URL; repeat it for a pool (default: the config's servers)")
    e.add_argument("--config", type=Path, help="project config YAML (servers, timeouts; default: built-in)")
    e.add_argument("--comfyui", type=Path, metavar="DIR", help="ComfyUI checkout to start (or COMFYUI_DIR)")
    e.add_argument("--work", type=Path, metavar="DIR", help="work folder of a single input (default <out stem>.enhance "
                                                            "beside --out)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output")
    e.add_argument("--dry-run", action="store_true", help="print the plan (chunks, frames, estimates per backend); "
                                                          "render nothing")
    e.add_argument("--memory-budget", type=float, metavar="GB", help="frames in + out per chunk on the server "
                                                                     "(default: half its free memory)")
    e.add_argument("--max-chunk-frames", type=int, default=0, metavar="N", help="source frames per chunk at most")
    e.add_argument("--skip-errors", action="store_true", help="repeat the last good frame over undecodable packets "
                                                              "(listed in the manifest) instead of stopping")
    e.add_argument("--upscale-model", metavar="NAME", help="file in the server's models/upscale_models")
    e.add_argument("--mode", choices=("keep_holds", "smooth"), help="retime mode (overrides the preset)")
    e.add_argument("--codec", choices=("libx264", "libx265"), help="final encoder (overrides the preset)")
    e.add_argument("--crf", type=int, help="final encode CRF (overrides the preset)")
    e.add_argument("--encoder-preset", help="x264/x265 preset (overrides the preset)")
    e.add_argument("--fallback-threshold", type=float, default=GUARD_THRESHOLD, metavar="X",
                   help=f"replace an interpolated frame whose error against its sources passes X by a copy of the "
                        f"nearer source (default {GUARD_THRESHOLD}, calibrated on real clips; 0 = off)")
    farm_cli.add_run_options(e)
    e.add_argument("--endpoint-bucket", action="store_true",
                   help="the endpoint returns files through S3 (BUCKET_ENDPOINT_URL): no ~20 MB result limit")


def options_from_args(args: argparse.Namespace) -> list[Options]:
    """One :class:`Options` per input (a folder gives its video files, sorted by name)."""
    base = Options(args.input[0], args.out or Path("out.mkv"), args.fps, args.fps_multiplier, args.scale,
                   args.preset, args.clip, None, args.comfyui, args.work, args.overwrite, args.dry_run,
                   args.memory_budget, args.max_chunk_frames, args.skip_errors, args.upscale_model, args.mode,
                   args.codec, args.crf, args.encoder_preset, args.fallback_threshold)
    inputs = expand_inputs(args.input)
    if args.out_dir is None:
        if len(inputs) > 1 or args.input[0].is_dir():
            raise OptionsInvalid(f"{len(inputs)} inputs: give --out-dir DIR (one output and work folder per input)")
        if args.out is None:
            raise OptionsInvalid("give --out FILE (one input) or --out-dir DIR")
        return [replace(base, input=inputs[0])]
    if args.out is not None or args.work is not None:
        raise OptionsInvalid("--out-dir names every output and work folder: drop --out / --work")
    if not args.out_dir.is_dir():
        raise OptionsInvalid(f"--out-dir {args.out_dir}: no such folder")
    outs = [args.out_dir / (p.name if p.suffix.lower() in CONTAINERS else f"{p.stem}.mkv") for p in inputs]
    stems = [o.stem for o in outs]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise OptionsInvalid(f"inputs named alike would share an output and work folder in {args.out_dir}: {twice}")
    return [replace(base, input=p, out=o) for p, o in zip(inputs, outs, strict=True)]


def expand_inputs(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                kinds = ", ".join(sorted(VIDEO_SUFFIXES))
                raise OptionsInvalid(f"{p}: no video file in the folder (looked for {kinds})")
            out += found
        else:
            out.append(p)
    seen: set[Path] = set()
    for p in out:
        if p.resolve() in seen:
            raise OptionsInvalid(f"{p} is given twice")
        seen.add(p.resolve())
    return out


def main(args: argparse.Namespace, console=None) -> int:
    opts = options_from_args(args)
    cfg = load_config(args.config)
    return batch.run(opts, farm_cli.options_from_args(args, args.server), cfg, console)
