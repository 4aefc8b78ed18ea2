"""Progress of the chunks across every input and server: a Rich bar with the ETA on a
terminal, plain log lines otherwise; then one summary line per server (chunks, busy
time, share of the wall time). The ETA counts output frames, not chunks: chunks differ
in length (they end at cuts)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .command import Enhance
    from .plan import Chunk

log = logging.getLogger("driver.enhance")


class ChunkProgress:
    """``console``: a Rich console to draw the bar on (None: plain lines)."""

    def __init__(self, console: Any = None):
        self.console = console
        self.bar: Any = None
        self.task: Any = None
        self.total = self.done = self.chunks = self.done_chunks = 0
        self.started = time.monotonic()
        self.rendered = 0  # output frames rendered by this command (the ETA's rate)
        self.per_server: dict[str, list[float]] = defaultdict(list)  # server -> busy seconds of each chunk

    def start(self, runs: Sequence[tuple[Enhance, list[tuple[Chunk, bool]]]]) -> None:
        """``runs``: each input's chunks, each with whether it is done already."""
        self.started = time.monotonic()
        for _run, chunks in runs:
            for c, done in chunks:
                self.total += c.n_out
                self.chunks += 1
                if done:
                    self.done += c.n_out
                    self.done_chunks += 1
        log.info("%d chunk(s) of %d input(s): %d already done, %d to render", self.chunks, len(runs),
                 self.done_chunks, self.chunks - self.done_chunks)
        if self.console is not None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("frames"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("enhance", total=self.total, completed=self.done)

    def eta_s(self) -> float | None:
        if not self.rendered:
            return None
        return (time.monotonic() - self.started) / self.rendered * (self.total - self.done)

    def chunk_done(self, run: Enhance, c: Chunk, server: str, busy_s: float) -> None:
        self.done += c.n_out
        self.rendered += c.n_out
        self.done_chunks += 1
        self.per_server[server].append(busy_s)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done,
                            description=f"enhance {self.done_chunks}/{self.chunks} chunks")
        eta = self.eta_s()
        log.info("%s chunk %d done on %s (%d frames, %.1f s); %d/%d chunks, ETA %s", run.opts.input.name, c.index,
                 server, c.n_out, busy_s, self.done_chunks, self.chunks, "-" if eta is None else f"{eta:.0f} s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def summary(self) -> list[dict]:
        """Per server: chunks rendered, busy seconds, share of this command's wall time."""
        wall = max(1e-9, time.monotonic() - self.started)
        return [{"server": s, "chunks": len(b), "busy_s": round(sum(b), 3), "busy_share": round(sum(b) / wall, 3)}
                for s, b in sorted(self.per_server.items())]

    def log_summary(self) -> None:
        for s in self.summary():
            log.info("server %s: %d chunk(s), busy %.1f s (%.0f%% of the wall time)", s["server"], s["chunks"],
                     s["busy_s"], 100 * s["busy_share"])
