"""Real-browser test harness: the system's Chromium driven by Playwright for Python (no
browser download: ``playwright install`` is never needed) and a page log of console
errors. The same interface as the canvas issue's harness (``find_chromium``, ``launch``,
``PageLog``), so either can serve both.

* ``AP_CHROMIUM``: the browser to use (default: the first of ``CHROMIUM_PATHS`` found).
  Debian/Ubuntu: ``apt-get install chromium fonts-dejavu-core``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

VIEWPORT = {"width": 1600, "height": 1000}
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> tuple[str | None, str]:
    """(path of a Chromium, "") when it and Playwright are both present, else (None, why not)."""
    if importlib.util.find_spec("playwright") is None:
        return None, "Playwright for Python is not installed (pip install -e '.[test]')"
    wanted = os.environ.get("AP_CHROMIUM")
    for path in ([wanted] if wanted else CHROMIUM_PATHS):
        if path and (Path(path).is_file() or shutil.which(path)):
            return path, ""
    return None, f"no Chromium at {wanted or ', '.join(CHROMIUM_PATHS)} (apt-get install chromium fonts-dejavu-core)"


def launch(playwright, path: str):
    """Headless Chromium; ``--no-sandbox`` because tests run as root in containers."""
    return playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])


@dataclass
class PageLog:
    """Console errors and uncaught exceptions of one page."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", lambda m: self.entries.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.entries.append(("pageerror", str(e))))

    def errors(self, since: int = 0) -> list[str]:
        return [text for kind, text in self.entries[since:] if kind in ("error", "pageerror")]
