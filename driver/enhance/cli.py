"""Command line of ``python -m driver enhance`` (parsing and the server connection only)."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from anime_pipeline.core.retime import GUARD_THRESHOLD
from driver.comfy.client import ComfyClient
from driver.comfy.finder import find_comfyui
from driver.comfy.local import LocalComfy
from driver.errors import ServerUnreachable

from . import command
from .options import PRESETS, Options

log = logging.getLogger(__name__)
DEFAULT_URL = "http://127.0.0.1:8188"


def add_command(sub, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("enhance", parents=[common], help="anime-safe frame-rate conversion and upscaling of a video "
                                                         "file (rerun the same command to resume)")
    e.add_argument("input", type=Path)
    e.add_argument("--out", type=Path, required=True, help="output video (.mkv, .mp4 or .mov)")
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, help="output frame rate, e.g. 48 or 23.976")
    rate.add_argument("--fps-multiplier", type=float, help="output rate = input rate x this (default 2)")
    e.add_argument("--scale", type=int, default=1, help="upscale factor 1-4 (the upscale model when configured, "
                                                        "else a lanczos resize)")
    e.add_argument("--preset", choices=list(PRESETS), default="anime-clean")
    e.add_argument("--clip", metavar="START-END", help="only this range, e.g. 00:10:00-00:10:20 (video, audio and "
                                                       "subtitles alike)")
    e.add_argument("--server", metavar="URL", help="ComfyUI base URL (default http://127.0.0.1:8188)")
    e.add_argument("--comfyui", type=Path, metavar="DIR", help="ComfyUI checkout to start (or COMFYUI_DIR)")
    e.add_argument("--work", type=Path, metavar="DIR", help="work folder (default <out stem>.enhance beside --out)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output")
    e.add_argument("--dry-run", action="store_true", help="print the plan (chunks, frames, estimate); render nothing")
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


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(args.input, args.out, args.fps, args.fps_multiplier, args.scale, args.preset, args.clip,
                   args.server, args.comfyui, args.work, args.overwrite, args.dry_run, args.memory_budget,
                   args.max_chunk_frames, args.skip_errors, args.upscale_model, args.mode, args.codec, args.crf,
                   args.encoder_preset, args.fallback_threshold)


def connector(opts: Options):
    """A context manager factory yielding a client: ``--server``; with ``--comfyui DIR`` that
    ComfyUI started in the work folder; else the default URL when a server answers there,
    else the ComfyUI ``driver.comfy.finder`` finds (``COMFYUI_DIR`` or the managed install)."""

    @contextlib.contextmanager
    def connect() -> Iterator[ComfyClient]:
        if opts.server or not opts.comfyui:
            client = ComfyClient(opts.server or DEFAULT_URL)
            try:
                client.system_stats()
                yield client
                return
            except ServerUnreachable:
                if opts.server:
                    raise  # the message names the URL and how to start one
        install = find_comfyui(opts.comfyui)
        if install is None:
            raise ServerUnreachable(f"no ComfyUI answers at {DEFAULT_URL}; pass --server URL or --comfyui DIR")
        with LocalComfy(install, opts.work_dir() / ".comfyui") as local:
            yield ComfyClient(local.url)

    return connect


def main(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    return command.run(opts, connector(opts))
