"""Draws the pack's example inputs (``custom_nodes/anime_pipeline/example_inputs/``): flat
cel-style pictures made by this code, so the examples ship no third-party art.

    python -m devkit.harness.example_art     # rewrites the files in the pack

* ``ap_example_keyframe.png``: a portrait keyframe (held shots).
* ``ap_example_first.png`` / ``_hero.png`` / ``_last.png``: three keyframes of one move.
* ``ap_example_triptych.png``: the same three side by side with dark gutters (a T2I strip).
* ``ap_example_clip.webp``: 17 frames at 16 fps, lossless: two held drawings (on twos),
  motion on ones, then a cut to night with a hold, so the motion gate finds all three
  labels. Its first and last daytime frames are the first / last keyframes. Each frame
  differs from the next in its corner pixel, or the WebP encoder would merge the holds.
* ``ap_example_clip.mp4``: the same 17 frames as an H.264 video file at 16 fps (CRF 12)
  with a quiet tone and a click on the cut, for the video examples (core ``LoadVideo``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

W, H = 256, 448  # portrait keyframe, ~ 9:16 like the pack's 720x1280 delivery
DAY = {"sky": (142, 202, 236), "far": (120, 170, 140), "near": (84, 140, 96), "sun": (255, 236, 150)}
NIGHT = {"sky": (32, 40, 86), "far": (46, 58, 96), "near": (30, 44, 70), "sun": (236, 236, 210)}
INK = (34, 28, 40)


def _background(draw: ImageDraw.ImageDraw, pal: dict) -> None:
    draw.rectangle([0, 0, W, H], fill=pal["sky"])
    draw.ellipse([W - 96, 40, W - 40, 96], fill=pal["sun"], outline=INK, width=2)
    draw.polygon([(0, 300), (70, 250), (150, 290), (W, 240), (W, H), (0, H)], fill=pal["far"], outline=INK)
    draw.polygon([(0, 360), (110, 330), (W, 350), (W, H), (0, H)], fill=pal["near"], outline=INK)


def _character(draw: ImageDraw.ImageDraw, x: float, blink: bool = False) -> None:
    """A chibi figure centred at ``x``: coat, head, hair, eyes (flat colours, ink lines)."""
    y = 250
    draw.polygon([(x - 34, y + 130), (x - 24, y + 30), (x + 24, y + 30), (x + 34, y + 130)],
                 fill=(214, 76, 92), outline=INK, width=2)
    draw.ellipse([x - 36, y - 52, x + 36, y + 36], fill=(255, 224, 200), outline=INK, width=2)
    draw.polygon([(x - 40, y - 10), (x - 38, y - 50), (x, y - 66), (x + 38, y - 50), (x + 40, y - 10),
                  (x + 22, y - 34), (x - 4, y - 26), (x - 22, y - 36)], fill=(70, 64, 150), outline=INK)
    for ex in (x - 14, x + 14):
        if blink:
            draw.line([ex - 7, y - 4, ex + 7, y - 4], fill=INK, width=3)
        else:
            draw.ellipse([ex - 7, y - 14, ex + 7, y + 4], fill=(60, 130, 200), outline=INK, width=2)
    draw.arc([x - 10, y + 8, x + 10, y + 20], 20, 160, fill=INK, width=2)


def frame(t: float, night: bool = False, blink: bool = False) -> Image.Image:
    """The scene with the figure at ``t`` (0 = left third, 1 = right third)."""
    img = Image.new("RGB", (W, H))
    draw = ImageDraw.Draw(img)
    _background(draw, NIGHT if night else DAY)
    _character(draw, 70 + t * (W - 140), blink)
    return img


def triptych(panels: list[Image.Image], gutter: int = 8) -> Image.Image:
    strip = Image.new("RGB", (3 * W + 4 * gutter, H + 2 * gutter), (16, 14, 20))
    for i, panel in enumerate(panels):
        strip.paste(panel, (gutter + i * (W + gutter), gutter))
    return strip


def clip_frames() -> list[Image.Image]:
    """Held drawing (2 frames), held blink (2), motion on ones (8), cut to night, hold (5)."""
    held = [frame(0.0)] * 2 + [frame(0.0, blink=True)] * 2
    motion = [frame(i / 7) for i in range(8)]
    return held + motion + [frame(1.0, night=True)] * 5


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    first, hero, last = frame(0.0), frame(0.5), frame(1.0)
    files = {"ap_example_keyframe.png": frame(0.35), "ap_example_first.png": first,
             "ap_example_hero.png": hero, "ap_example_last.png": last,
             "ap_example_triptych.png": triptych([first, hero, last])}
    written = []
    for name, img in files.items():
        img.save(out / name, optimize=True)
        written.append(out / name)
    frames = clip_frames()
    for k, img in enumerate(frames):  # WebP merges identical frames: mark each in one corner pixel
        img = frames[k] = img.copy()
        img.putpixel((0, 0), (k, k, k))
    frames[0].save(out / "ap_example_clip.webp", save_all=True, append_images=frames[1:], duration=62,
                   loop=0, lossless=True, method=6)
    write_video(out / "ap_example_clip.mp4", frames, cut=12)
    return written + [out / "ap_example_clip.webp", out / "ap_example_clip.mp4"]


def write_video(path: Path, frames: list[Image.Image], cut: int, fps: int = 16, rate: int = 48000) -> None:
    """H.264 at ``fps`` with an AAC tone (a click where frame ``cut`` starts), made with PyAV."""
    import av
    import numpy as np

    seconds = len(frames) / fps
    t = np.arange(int(seconds * rate)) / rate
    pcm = 0.05 * np.sin(2 * np.pi * 440 * t)
    pcm[int(cut / fps * rate):int(cut / fps * rate) + 480] = 0.6
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "slow"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="mono")
        for k, img in enumerate(frames):
            vf = av.VideoFrame.from_image(img.convert("RGB")).reformat(format="yuv420p")
            vf.pts = k
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        samples = pcm.astype(np.float32)[None, :]
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


if __name__ == "__main__":
    from devkit.harness.comfy import PACK_DIR

    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else PACK_DIR / "example_inputs"):
        print(path, path.stat().st_size)
