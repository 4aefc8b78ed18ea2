"""The review page, from one set of templates (``page/review.html``, ``.css``, ``.js``:
plain HTML, CSS and JavaScript, no build step, nothing fetched from elsewhere):

* ``dailies.html`` in the run folder: the page with the run's state embedded, read-only,
  opening from disk (links relative to the run folder) for sharing;
* the review app (``python -m driver review``) serves the same page live: verdicts,
  updates while a run is in progress.

The state (:mod:`driver.outputs.review_state`) goes into the page as JSON inside a
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, so no text of a
storyboard can close the script or inject markup; the page escapes every value it shows."""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from driver.files import atomic_write_text
from driver.story.storyboard import Storyboard

from . import review_state
from .approvals import Approvals
from .manifest import Manifest

DAILIES_NAME = "dailies.html"


@cache
def _template(name: str) -> str:
    return resources.files(__package__).joinpath("page", name).read_text(encoding="utf-8")


def _script_json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c") \
        .replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(state: dict, *, live: bool, base: str = "", fps: float | None = None) -> str:
    """The page for ``state``: ``live`` (the app: verdicts, polling) or a read-only copy;
    ``base`` is prefixed to the run folder's relative paths."""
    title = f"{state.get('project') or ''} EP{int(state.get('episode') or 0):03d} dailies"
    config = {"live": live, "base": base, "fps": fps, "poll_ms": 1500}
    values = {"CSS": _template("review.css"), "CONFIG": _script_json(config), "STATE": _script_json(state),
              "TITLE": html.escape(title), "JS": _template("review.js")}
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: values[m[1]], _template("review.html"))  # one pass


def write_dailies(sb: Storyboard, manifest: Manifest, approvals: Approvals) -> Path:
    state = review_state.build(manifest, approvals, sb)
    path = manifest.run_dir / DAILIES_NAME
    atomic_write_text(path, render_page(state, live=False, fps=sb.delivery.fps))
    manifest.data["episode"]["dailies"] = DAILIES_NAME
    return path
