"""Writes the template browser's thumbnail of every example workflow, ``<name>.jpg``
beside ``<name>.json``: for a weight-free example, a picture of what it makes (run from
the Run button in ComfyUI's frontend, the middle frame of a video); for an example that
needs models (or makes no picture), a picture of its graph as it opens.

    COMFYUI_DIR=... COMFYUI_PYTHON=... python -m devkit.harness.thumbnails [NAME ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
from anime_pipeline.examples import (
    EXAMPLE_WORKFLOWS,
    copy_example_inputs,
    example_model_files,
)
from PIL import Image

from devkit.harness.browser import VIEWPORT, ComfyCanvas, find_chromium, launch
from devkit.harness.comfy import start_server

SIZE = (384, 288)  # the cards crop to a square; keep the middle


def _picture(client, entry: dict, work: Path) -> Image.Image | None:
    """The first picture among a run's outputs (a video's middle frame), or None."""
    for output in entry["outputs"].values():
        for ref in output.get("images", []):
            path = client.download(ref, work / ref["filename"])
            if not output.get("animated", [False])[0]:
                return Image.open(path).convert("RGB")
            with av.open(str(path)) as video:
                frames = [f.to_image() for f in video.decode(video=0)]
            return frames[len(frames) // 2].convert("RGB")
    return None


def _graph_picture(canvas: ComfyCanvas, work: Path) -> Image.Image:
    """The graph as it opens (minimap hidden), cropped to its nodes, letterboxed."""
    canvas.close_dialogs()
    canvas.page.evaluate("() => window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false)")
    canvas.page.wait_for_timeout(300)
    boxes = canvas.node_boxes()
    shot = Image.open(canvas.screenshot(work / "graph.png")).convert("RGB")
    x0, y0 = min(b["x"] for b in boxes) - 12, min(b["y"] for b in boxes) - 12
    x1, y1 = max(b["x"] + b["w"] for b in boxes) + 12, max(b["y"] + b["h"] for b in boxes) + 12
    graph = shot.crop((round(x0), round(y0), round(x1), round(y1)))
    graph.thumbnail(SIZE, Image.LANCZOS)
    framed = Image.new("RGB", SIZE, shot.getpixel((int(x0), int(y0))))
    framed.paste(graph, ((SIZE[0] - graph.width) // 2, (SIZE[1] - graph.height) // 2))
    return framed


def _fill(picture: Image.Image) -> Image.Image:
    """Scale to cover SIZE and keep the middle (the cards show a centred square)."""
    scale = max(SIZE[0] / picture.width, SIZE[1] / picture.height)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    left, top = (picture.width - SIZE[0]) // 2, (picture.height - SIZE[1]) // 2
    return picture.crop((left, top, left + SIZE[0], top + SIZE[1]))


def thumbnail(canvas: ComfyCanvas, path: Path, work: Path) -> Path:
    workflow = json.loads(path.read_text())
    client = canvas.server.client()
    canvas.close_dialogs()
    canvas.load(workflow, path.stem)
    picture = None
    if not example_model_files(workflow):
        before = set(client._request("GET", "/history").json())
        canvas.press_run()
        prompt_id = canvas.wait_for_new_history(client, before)
        canvas.wait_idle(client)
        picture = _picture(client, client._request("GET", "/history").json()[prompt_id], work)
    picture = _fill(picture) if picture else _graph_picture(canvas, work)
    dest = path.with_suffix(".jpg")
    picture.save(dest, quality=80, optimize=True)
    return dest


def main(names: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    paths = [EXAMPLE_WORKFLOWS / f"{n}.json" for n in names] or sorted(EXAMPLE_WORKFLOWS.glob("*.json"))
    work = Path(tempfile.mkdtemp(prefix="ap_thumbs_"))
    server = start_server(work / "base", with_test_nodes=False)
    copy_example_inputs(server.input_dir)
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright, find_chromium()[0])
            canvas = ComfyCanvas(browser.new_page(viewport=VIEWPORT), server.url).open()
            canvas.server = server
            for path in paths:
                print(thumbnail(canvas, path, work))
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
