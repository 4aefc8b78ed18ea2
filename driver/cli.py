"""Command line: parsing, logging and exit codes only (the work is in :mod:`driver.runner`).

    python -m driver run STORYBOARD [--server URL] [--config FILE] [--out DIR] [--only S01T02 ...]
                                    [--stage keyframes|video|all] [--dry-run] [--max-retakes N] [--comfyui DIR]
    python -m driver validate STORYBOARD [--config FILE]
    python -m driver status RUN_DIR [--json]
    python -m driver review RUN_DIR [--port N] [--host H] [--token T] [--by NAME] [--no-browser]
    python -m driver farm up|status|down ...   (render farm: ``driver.farm.cli``)
    python -m driver comfyui install|status|start|uninstall|where   (managed ComfyUI: ``driver.comfy.cli``)
    python -m driver enhance INPUT... (--out OUTPUT | --out-dir DIR) [--fps F | --fps-multiplier M] [--scale S] ...
                                               (video files: ``driver.enhance.cli``)

Exit codes: one per class of error (``driver.errors``; table in the README)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from . import __version__, runner
from .comfy import cli as comfy_cli
from .enhance import cli as enhance_cli
from .errors import DriverError, os_error
from .farm import cli as farm_cli
from .progress import RichReporter, make_reporter, setup_logging

log = logging.getLogger("driver")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m driver", description="Render anime storyboards through ComfyUI.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("--plain", action="store_true", help="plain log lines even on a terminal (no progress bars)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", parents=[common], help="render a storyboard (rerun the same command to resume)")
    r.add_argument("storyboard", type=Path)
    r.add_argument("--server", action="append", default=[], metavar="URL",
                   help="ComfyUI base URL, e.g. http://127.0.0.1:8188 (default: the config's servers)")
    r.add_argument("--config", type=Path, help="project config YAML (default: built-in defaults)")
    r.add_argument("--out", type=Path, help="run folder (default: <output_root>/<PRJ>_EP<NNN>)")
    r.add_argument("--only", nargs="+", default=[], metavar="SHOT", help="shot ids to render, e.g. S01T02 S03T01")
    r.add_argument("--stage", choices=("keyframes", "video", "all"), default="all",
                   help="keyframes: render keyframes and stop for review; video: render videos of approved shots; "
                        "all (default): straight through")
    r.add_argument("--dry-run", action="store_true", help="write the plan and every workflow; no server needed")
    r.add_argument("--max-retakes", type=int, help="re-renders of a shot that fails its gates (default 2)")
    r.add_argument("--comfyui", type=Path, metavar="DIR",
                   help="ComfyUI checkout to start when no server answers (default: COMFYUI_DIR, else the config's "
                        "local_comfyui, else the managed install)")
    r.add_argument("--cpu", action="store_true", help="start that local ComfyUI with --cpu even where a GPU is found")
    farm_cli.add_run_options(r)

    v = sub.add_parser("validate", parents=[common], help="check a storyboard, the config and every template binding")
    v.add_argument("storyboard", type=Path)
    v.add_argument("--config", type=Path)

    s = sub.add_parser("status", parents=[common], help="summarise a run folder")
    s.add_argument("run_dir", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    rv = sub.add_parser("review", parents=[common],
                        help="review a run folder in the browser (verdicts, attempts, gates)")
    rv.add_argument("run_dir", type=Path)
    rv.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    rv.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; any other needs "
                                                         "--token)")
    rv.add_argument("--token", help="secret every request must carry (the printed URL carries it once)")
    rv.add_argument("--by", help="reviewer name stored with each verdict (default: the OS user)")
    rv.add_argument("--no-browser", action="store_true", help="print the URL only")
    farm_cli.add_farm_command(sub, common)
    comfy_cli.add_command(sub, common)
    enhance_cli.add_command(sub, common)
    return p


@contextlib.contextmanager
def _interrupt_on_termination():
    """SIGTERM and SIGHUP unwind like Ctrl-C while a command runs: the manifest is saved, a local ComfyUI is
    stopped, the run resumes. The previous handlers come back afterwards (tests call :func:`main` in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_status(info: dict) -> None:
    print(f"run {info['run_id']}  storyboard {info['storyboard'].get('path')}  updated {info['updated_at']}")
    print(f"  {'shot':<7} {'status':<16} {'approach':<20} {'keyframes':<12} {'clip':<12} attempts per job")
    for sid, s in info["shots"].items():
        jobs = ", ".join(f"{j} {n}" for j, n in s["attempts"].items()) or "-"
        line = f"  {sid:<7} {s['status'] or '':<16} {s['approach'] or '':<20} {s['review'] or '-':<12} " \
               f"{s['clip_review'] or '-':<12} {jobs}"
        print(line + (f"  ! {s['error']}" if s["error"] else ""))
    counts = ", ".join(f"{n} {k}" for k, n in info["counts"].items())
    print(f"  shots: {counts}")
    cut = info["cut"]
    held = f" (black placeholders for {', '.join(info['placeholders'])})" if info["placeholders"] else ""
    print(f"  cut: {cut or '(not yet)'}{held}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _interrupt_on_termination():
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    drawn = args.command in ("run", "enhance") and not args.dry_run
    reporter = make_reporter(force_plain=args.plain) if drawn else None
    setup_logging(args.verbose, rich_console=reporter.console if isinstance(reporter, RichReporter) else None)
    try:
        if args.command == "validate":
            info = runner.validate(args.storyboard, args.config)
            print(f"{args.storyboard}: valid ({info['shots']} shots, {info['jobs']} jobs, "
                  f"estimated GPU time {info['estimate_gpu_s']:.0f} s)")
            return 0
        if args.command == "status":
            info = runner.status(args.run_dir)
            print(json.dumps(info, indent=1)) if args.json else _print_status(info)
            return 0
        if args.command == "review":
            from .review.serve import serve  # the web server only when asked for
            return serve(args.run_dir, host=args.host, port=args.port, token=args.token, reviewer=args.by,
                         open_browser=not args.no_browser)
        if args.command == "farm":
            return farm_cli.main(args)
        if args.command == "comfyui":
            return comfy_cli.main(args)
        if args.command == "enhance":
            return enhance_cli.main(args, reporter.console if isinstance(reporter, RichReporter) else None)
        opts = runner.RunOptions(args.storyboard, args.config, args.out, args.only, args.stage, args.dry_run,
                                 args.max_retakes, args.comfyui, args.cpu,
                                 farm=farm_cli.options_from_args(args, args.server))
        return runner.run(opts, reporter or make_reporter(force_plain=True))
    except DriverError as exc:
        log.error("%s: %s", exc.code, exc)
        return exc.exit_code
    except OSError as exc:  # disk full, read-only folder, a file where a folder is named: no traceback
        err = os_error(exc)
        log.error("%s: %s", err.code, err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("cancelled: finished work is kept; rerun the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
