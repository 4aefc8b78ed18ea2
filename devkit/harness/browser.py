"""Real-browser test harness: the system's Chromium driven by Playwright for Python
(no browser download: ``playwright install`` is never needed), a page that records its
console errors, and helpers for ComfyUI's frontend.

* ``AP_CHROMIUM``: the browser to use (default: the first of ``CHROMIUM_PATHS`` found).
  Debian/Ubuntu: ``apt-get install chromium fonts-dejavu-core``.
* ``find_chromium()`` says which browser, or why none; the ``browser`` fixture in
  ``tests/conftest.py`` skips with that reason, or fails under ``CI=true``.
* ``ComfyCanvas`` wraps a page on a ComfyUI server: wait for the app, load a workflow as
  the template browser does, list missing node types, read dialogs, press Run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

VIEWPORT = {"width": 1600, "height": 1000}
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Logged by the stock frontend 1.27 with no custom node installed: not ours.
FRONTEND_NOISE = ("Cannot read properties of undefined (reading 'id')",)


def find_chromium() -> tuple[str | None, str]:
    """(path of a Chromium and Playwright both present, "") or (None, why not)."""
    if importlib.util.find_spec("playwright") is None:
        return None, "Playwright for Python is not installed (pip install -e '.[test]')"
    wanted = os.environ.get("AP_CHROMIUM")
    for path in ([wanted] if wanted else CHROMIUM_PATHS):
        if path and (Path(path).is_file() or shutil.which(path)):
            return path, ""
    where = f"AP_CHROMIUM={wanted}" if wanted else ", ".join(CHROMIUM_PATHS)
    return None, f"no Chromium at {where} (apt-get install chromium fonts-dejavu-core)"


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
        return [text for kind, text in self.entries[since:] if kind in ("error", "pageerror")
                and not any(noise in text for noise in FRONTEND_NOISE)]


class ComfyCanvas:
    """ComfyUI's frontend in a page: ``open()`` it, then load and run workflows."""

    def __init__(self, page, url: str):
        self.page, self.url, self.log = page, url, PageLog()
        self.server = None  # the ServerHandle, when a fixture started one
        self.log.attach(page)

    def open(self, timeout: float = 90.0) -> ComfyCanvas:
        self.page.goto(self.url)
        self.page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph"
                                    " && document.querySelector('canvas#graph-canvas')"
                                    " && Object.keys(window.LiteGraph.registered_node_types).length > 100",
                                    timeout=timeout * 1000)
        self.page.wait_for_timeout(1500)  # settings, model folders and the first graph settle
        self.close_dialogs()
        return self

    def load(self, workflow: dict, name: str) -> None:
        """Load as the template browser does (clean canvas, restore the saved view)."""
        self.page.evaluate("([wf, name]) => window.app.loadGraphData(wf, true, true, name)", [workflow, name])
        self.page.wait_for_timeout(500)

    def missing_node_types(self) -> list[str]:
        return self.page.evaluate("() => window.app.graph.nodes.map(n => n.type)"
                                  ".filter(t => !(t in window.LiteGraph.registered_node_types))")

    def dialogs(self) -> list[str]:
        return [d.inner_text() for d in self.page.query_selector_all(".p-dialog")]

    def close_dialogs(self) -> None:
        for _ in range(3):
            if not self.page.query_selector(".p-dialog"):
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)

    def node_boxes(self) -> list[dict]:
        """Every node's title, type and box on screen (CSS pixels of the page), title bar included."""
        return self.page.evaluate("""() => {
            const c = window.app.canvas, r = c.canvas.getBoundingClientRect(), ds = c.ds;
            const th = window.LiteGraph.NODE_TITLE_HEIGHT;
            return window.app.graph.nodes.map(n => ({id: n.id, type: n.type, title: n.title,
                x: r.left + (n.pos[0] + ds.offset[0]) * ds.scale,
                y: r.top + (n.pos[1] - th + ds.offset[1]) * ds.scale,
                w: n.size[0] * ds.scale, h: (n.size[1] + th) * ds.scale}));
        }""")

    def canvas_box(self) -> dict:
        return self.page.evaluate("() => { const r = window.app.canvas.canvas.getBoundingClientRect();"
                                  " return {x: r.left, y: r.top, w: r.width, h: r.height}; }")

    def press_run(self) -> None:
        self.page.click("[data-testid='queue-button']")

    def node_outputs(self) -> dict:
        """What the frontend received for each output node (``app.nodeOutputs``)."""
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.app.nodeOutputs || {}))")

    def wait_idle(self, client, timeout: float = 300.0) -> None:
        """Until the server's queue is empty (over HTTP, as a script would watch it)."""
        deadline = time.monotonic() + timeout
        while True:
            queue = client._request("GET", "/queue").json()
            if not queue["queue_running"] and not queue["queue_pending"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the queue did not empty within {timeout:.0f} s")
            time.sleep(0.5)

    def minimap_box(self) -> dict | None:
        return self.page.evaluate("() => { const e = document.querySelector('.litegraph-minimap');"
                                  " if (!e) return null; const r = e.getBoundingClientRect();"
                                  " return {x: r.left, y: r.top, w: r.width, h: r.height}; }")

    def wait_for_new_history(self, client, before: set[str], timeout: float = 300.0) -> str:
        """The id of the first prompt in ``/history`` that is not in ``before``."""
        deadline = time.monotonic() + timeout
        while True:
            new = set(client._request("GET", "/history").json()) - before
            if new:
                return new.pop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no prompt finished within {timeout:.0f} s of pressing Run")
            time.sleep(0.5)

    def wait_for_outputs(self, node_ids: set[str], timeout: float = 30.0) -> set[str]:
        """Output nodes among ``node_ids`` the frontend has received results for."""
        deadline = time.monotonic() + timeout
        while True:
            shown = {k.split(":")[-1] for k, v in self.node_outputs().items() if v} & node_ids
            if shown == node_ids or time.monotonic() > deadline:
                return shown
            time.sleep(0.3)

    def template_cards(self, module: str, timeout: float = 30.0) -> dict[str, dict]:
        """The template browser's cards of one pack: ``{name: {title, thumbnail, width}}``
        (``width``: the thumbnail's decoded width, 0 when it did not load)."""
        self.page.click(f".p-listbox-option:has-text('{module}')")
        cards = self.page.locator("[data-testid^='template-workflow-']")
        cards.first.wait_for(timeout=timeout * 1000)
        shown = 0
        while cards.count() != shown:  # the grid renders a page of cards at a time
            shown = cards.count()
            cards.nth(shown - 1).scroll_into_view_if_needed()
            self.page.wait_for_timeout(800)
        found = {}
        for k in range(cards.count()):
            card = cards.nth(k)
            name = card.get_attribute("data-testid").removeprefix("template-workflow-")
            img = self._thumbnail(card, timeout)
            found[name] = {"title": card.locator("h3").inner_text().strip(), "thumbnail": img.get_attribute("src"),
                           "width": img.evaluate("i => i.naturalWidth")}
        for k in reversed(range(min(3, cards.count()))):  # back to the top, pictures shown
            self._thumbnail(cards.nth(k), timeout)
        return found

    @staticmethod
    def _thumbnail(card, timeout: float):
        """The card's picture, scrolled into view and given ``timeout`` s to load."""
        card.scroll_into_view_if_needed()
        img = card.locator("img").first
        deadline = time.monotonic() + timeout
        while img.evaluate("i => !(i.complete && i.naturalWidth)") and time.monotonic() < deadline:
            time.sleep(0.2)
        return img

    def open_templates(self) -> None:
        self.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        self.page.wait_for_selector("[data-testid='template-workflows-content']", timeout=30000)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
