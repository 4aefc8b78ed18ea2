"""Summary card: the quality report as a small PNG (a table of the gates, the full JSON
in a compressed ``iTXt`` chunk), so clients that only collect images (RunPod's
worker-comfyui) still receive the report.

Drawing uses OpenCV's Hershey font (no font files needed); PNG writing uses Pillow,
the only common library that writes text chunks.
"""

from __future__ import annotations

import io
import textwrap

import cv2
import numpy as np

from .report import UI_KEY, to_json

WIDTH = 760
LINE = 22
MARGIN = 14
FONT = cv2.FONT_HERSHEY_SIMPLEX
SCALE = 0.48
CHARS_PER_LINE = 100
BG, FG, DIM = (250, 250, 250), (30, 30, 30), (110, 110, 110)
GREEN, RED = (40, 140, 60), (200, 40, 40)
TITLE_SCALE = 0.7
MAX_REASON_LINES = 4
COLUMNS = (MARGIN, 90, 260, 320)
INDENT = 40
SKIP = {"n_frames", "frame", "seam_index", "keyframe_resized_from", "mean_shift_rgb", "analysis_size"}
TEXT_KEY = UI_KEY


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _scalars(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in SKIP:
                _scalars(f"{prefix}{k}." if isinstance(v, (dict, list)) else f"{prefix}{k}", v, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        _scalars(prefix.rstrip(".") + "[0].", value[0], out)
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        out.append((prefix, value))


def headline(gate: dict, limit: int = 4) -> str:
    """A few scalar metrics of a gate, ``key=value`` (nested ones flattened one level)."""
    items: list = []
    _scalars("", gate["metrics"], items)
    return "  ".join(f"{k}={_fmt(v)}" for k, v in items[:limit])[:CHARS_PER_LINE]


Row = list  # [(x, text, colour, scale), ...]


def card_rows(report: dict) -> list[Row]:
    """The card's rows, each a list of ``(x, text, colour, scale)`` cells."""
    ok = report["passed"]
    f = report["frames"]
    rows = [[(MARGIN, f"QUALITY {'PASSED' if ok else 'FAILED'}  (policy {report['policy']})", GREEN if ok else RED,
              TITLE_SCALE)],
            [(MARGIN, f"{report['label'] or 'unlabelled'}  |  {f['count']} frames {f['width']}x{f['height']}  |  "
                      f"report v{report['version']}", DIM, SCALE)]]
    if not report["gates"]:
        rows.append([(MARGIN, "no gate connected", DIM, SCALE)])
    for g in report["gates"]:
        colour = GREEN if g["passed"] else RED
        rows.append([(x, text, colour, SCALE) for x, text in zip(COLUMNS, (
            g["input"], g["name"], "PASS" if g["passed"] else "FAIL", f"{len(g['failed_frames'])} failed frame(s)"),
            strict=True)])
        line = headline(g)
        if line:
            rows.append([(INDENT, line, FG, SCALE)])
        wrapped = [w for r in g["reasons"] for w in textwrap.wrap(r, CHARS_PER_LINE, subsequent_indent="  ")]
        rows.extend([(INDENT, w, RED, SCALE)] for w in wrapped[:MAX_REASON_LINES])
        if len(wrapped) > MAX_REASON_LINES:
            rows.append([(INDENT, "... (full report in the PNG text chunk)", DIM, SCALE)])
    return rows


def render_card(report: dict) -> np.ndarray:
    """The card as ``uint8 [H, W, 3]`` RGB."""
    rows = card_rows(report)
    height = MARGIN * 2 + LINE * len(rows) + 10
    img = np.full((height, WIDTH, 3), BG, np.uint8)
    y = MARGIN + LINE - 6
    for row in rows:
        for x, text, colour, scale in row:
            cv2.putText(img, text, (x, y), FONT, scale, colour, 2 if scale > SCALE else 1, cv2.LINE_AA)
        y += LINE + (10 if row[0][3] > SCALE else 0)
    return img


def card_png(report: dict) -> bytes:
    """PNG bytes of the card with the report JSON in an ``iTXt`` chunk (key ``ap_quality_report``)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(TEXT_KEY, to_json(report), zip=True)
    buf = io.BytesIO()
    Image.fromarray(render_card(report)).save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def read_card(data) -> dict:
    """The report stored in a card (PNG bytes or a path)."""
    import json

    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with Image.open(src) as im:
        text = im.info.get(TEXT_KEY)
    if text is None:
        raise ValueError(f"no {TEXT_KEY!r} text chunk in this PNG")
    return json.loads(text)
