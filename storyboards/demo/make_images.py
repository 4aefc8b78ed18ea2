"""Draw the demo storyboard's keyframes: the project's own images, made by this code.

    python storyboards/demo/make_images.py        # rewrites storyboards/demo/keyframes/*.png

Flat cel-shaded scenes (gradient sky, sun, layered hills, a skyline with lit windows, a
character silhouette), deterministic from a fixed seed, so the files can be rebuilt
bit for bit. The strip holds three panels side by side with dark gutters and borders,
like a T2I triptych, for AP_TriptychSplit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "keyframes"
SKIES = {
    "dusk": ((38, 40, 92), (244, 138, 96)),
    "noon": ((74, 144, 226), (196, 226, 250)),
    "night": ((10, 12, 40), (58, 52, 110)),
}


def _sky(w: int, h: int, top, bottom) -> Image.Image:
    t = np.linspace(0.0, 1.0, h)[:, None, None] ** 1.4
    rows = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return Image.fromarray(np.repeat(rows, w, axis=1).astype(np.uint8), "RGB")


def _hills(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator, base: float, colour) -> None:
    xs = np.linspace(0, w, 24)
    wave = np.sin(xs / w * rng.uniform(4, 8) + rng.uniform(0, 6))
    ys = h * base + h * 0.04 * wave + rng.normal(0, h * 0.006, xs.size)
    draw.polygon([(0, h)] + list(zip(xs.tolist(), ys.tolist(), strict=True)) + [(w, h)], fill=colour)


def _skyline(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator, lit: float) -> None:
    x = 0
    while x < w:
        bw = int(rng.integers(w // 14, w // 7))
        bh = int(h * rng.uniform(0.18, 0.42))
        top = int(h * 0.78) - bh
        draw.rectangle([x, top, x + bw, h], fill=(28, 26, 48))
        for wy in range(top + 8, int(h * 0.78), 14):
            for wx in range(x + 6, x + bw - 6, 12):
                if rng.random() < lit:
                    draw.rectangle([wx, wy, wx + 5, wy + 7], fill=(255, 214, 120))
        x += bw + int(rng.integers(2, 10))


def _character(draw: ImageDraw.ImageDraw, cx: float, ground: float, size: float, hair, coat) -> None:
    head = size * 0.16
    body_top = ground - size * 0.62
    draw.polygon([(cx - size * 0.17, ground), (cx - size * 0.12, body_top), (cx + size * 0.12, body_top),
                  (cx + size * 0.17, ground)], fill=coat)
    draw.ellipse([cx - head, body_top - 2 * head, cx + head, body_top], fill=(250, 222, 200))
    for ex in (-0.4, 0.25):  # eyes
        draw.ellipse([cx + head * ex, body_top - 1.05 * head, cx + head * (ex + 0.18), body_top - 0.7 * head],
                     fill=(40, 30, 60))
    draw.pieslice([cx - head * 1.15, body_top - 2.25 * head, cx + head * 1.15, body_top - 0.3 * head], 180, 360,
                  fill=hair)
    draw.polygon([(cx + head * 0.9, body_top - 1.4 * head), (cx + head * 2.4, body_top - 0.2 * head),
                  (cx + head * 0.9, body_top - 0.6 * head)], fill=hair)  # ponytail


def scene(w: int, h: int, sky: str, seed: int, *, sun=(0.7, 0.35), character: float | None = 0.42,
          lit: float = 0.35) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = _sky(w, h, *SKIES[sky])
    glow = Image.new("RGB", (w, h), (0, 0, 0))
    g = ImageDraw.Draw(glow)
    sx, sy, r = sun[0] * w, sun[1] * h, min(w, h) * 0.09
    g.ellipse([sx - 2.5 * r, sy - 2.5 * r, sx + 2.5 * r, sy + 2.5 * r], fill=(120, 80, 40))
    img = Image.blend(img, Image.composite(glow, img, glow.convert("L")), 0.5).filter(ImageFilter.SMOOTH)
    d = ImageDraw.Draw(img)
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 236, 190) if sky != "night" else (236, 236, 250))
    _hills(d, w, h, rng, 0.62, (92, 70, 120) if sky != "noon" else (96, 150, 120))
    _skyline(d, w, h, rng, lit)
    _hills(d, w, h, rng, 0.86, (40, 34, 60) if sky != "noon" else (60, 110, 80))
    if character is not None:
        _character(d, character * w, h * 0.93, h * 0.45, hair=(200, 60, 90), coat=(60, 70, 130))
    return img


def strip(panels: list[Image.Image], gutter: int = 12, colour=(16, 16, 20)) -> Image.Image:
    pw, ph = panels[0].size
    out = Image.new("RGB", (3 * pw + 4 * gutter, ph + 2 * gutter), colour)
    for i, p in enumerate(panels):
        out.paste(p, (gutter + i * (pw + gutter), gutter))
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    scene(432, 768, "dusk", 1, sun=(0.65, 0.3), character=0.45).save(OUT / "city_dusk.png", optimize=True)
    night = scene(432, 768, "night", 2, sun=(0.25, 0.18), character=None, lit=0.6)
    night.save(OUT / "rooftop_night.png", optimize=True)
    panels = [scene(368, 656, "noon", 3, sun=(0.8, 0.2), character=0.25),
              scene(368, 656, "noon", 3, sun=(0.8, 0.2), character=0.5),
              scene(368, 656, "noon", 3, sun=(0.8, 0.2), character=0.75)]
    strip(panels).save(OUT / "walk_triptych.png", optimize=True)


if __name__ == "__main__":
    main()
