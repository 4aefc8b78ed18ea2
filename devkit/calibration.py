"""Test footage and the degradations used to measure the gates' defaults.

The gate thresholds are calibrated on *real* generated clips (positives) and on
negatives built from them at the magnitudes that matter in practice (a +4 %
brightness pulse, a 3-4/255 luma step at a seam, a delta-E 3 colour drift...).
The same builders serve the unit tests and ``benchmarks/eval_gates.py``, so a
threshold change is judged on exactly the data that set it.

Everything works on ``uint8`` RGB numpy clips ``[T, H, W, 3]`` (single frames
``[H, W, 3]``); nothing here is used by the nodes at run time.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from anime_pipeline.core.quality.colour import lab_to_rgb_u8, rgb_u8_to_lab

TEMPLATE_PACKAGE = "comfyui_workflow_templates"  # ships real WAN outputs as animated WebP (0.1.95)

# The calibration set: every multi-frame WAN output among the templates, minus the real
# flicker negative. Seen in review: anime and 3D-cartoon characters, landscapes, a car at
# night with flashing neon (video_wan_vace_14B_t2v), lighting changes (video_wan_ati).
WAN_CLIPS = (
    "api_wan_image_to_video-1.webp", "api_wan_text_to_video-1.webp", "image_to_video_wan-1.webp",
    "text_to_video_wan-1.webp", "video_wan2.1_alpha_t2v_14B-1.webp", "video_wan2.1_fun_camera_v1.1_1.3B-1.webp",
    "video_wan2.1_fun_camera_v1.1_14B-1.webp", "video_wan2_2_14B_animate-1.webp", "video_wan2_2_14B_flf2v-1.webp",
    "video_wan2_2_14B_fun_camera-1.webp", "video_wan2_2_14B_fun_control-1.webp",
    "video_wan2_2_14B_fun_inpaint-1.webp", "video_wan2_2_14B_i2v-1.webp", "video_wan2_2_14B_s2v-1.webp",
    "video_wan2_2_14B_t2v-1.webp", "video_wan2_2_5B_fun_control-1.webp", "video_wan2_2_5B_fun_inpaint-1.webp",
    "video_wan2_2_5B_ti2v-1.webp", "video_wan_ati-1.webp", "video_wan_vace_14B_ref2v-1.webp",
    "video_wan_vace_14B_t2v-1.webp", "video_wan_vace_14B_v2v-1.webp", "video_wan_vace_14B_v2v-2.webp",
    "video_wan_vace_flf2v-1.webp", "video_wan_vace_inpainting-1.webp", "video_wan_vace_inpainting-2.webp",
    "video_wan_vace_outpainting-1.webp", "video_wan_vace_outpainting-2.webp", "wan2.1_fun_control-1.webp",
    "wan2.1_fun_control-2.webp", "wan2.1_fun_inp-1.webp",
)
# A first-last-frame output with strong texture/brightness flicker: a real temporal negative.
FLICKER_CLIP = "wan2.1_flf2v_720_f16-1.webp"
# Hard cuts in the showcase edits (two generations joined), found by inspection; the cut
# rule does not label this one (same white cat, same colours), so the temporal gate is
# given it as motion labels, as a wired AP_MotionGate with a lower cut_color would.
KNOWN_CUTS = {"video_wan2_2_14B_fun_inpaint-1.webp": (50,)}


def templates_dir() -> Path:
    """Folder of the template media; ``FileNotFoundError`` when the package is absent."""
    spec = importlib.util.find_spec(TEMPLATE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {TEMPLATE_PACKAGE} package (pip install comfyui-workflow-templates==0.1.95) "
                                "is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "templates"
    if not (folder / FLICKER_CLIP).is_file():
        raise FileNotFoundError(f"{folder} holds no template media (versions after 0.1.95 moved it out)")
    return folder


@lru_cache(maxsize=8)
def template_clip(name: str) -> np.ndarray:
    """A template clip as ``uint8 [T,H,W,3]`` (cached; treat as read-only)."""
    clip = read_animated(templates_dir() / name)
    clip.setflags(write=False)
    return clip


def read_animated(path: str | Path) -> np.ndarray:
    """All frames of an animated WebP/GIF/PNG as ``uint8 [T, H, W, 3]`` RGB (Pillow decodes
    animated WebP, which PyAV's webp decoder does not)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode/decode round trip of one RGB frame."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def lossy_round_trip(frame: np.ndarray, quality: int = 85, blur_sigma: float = 0.6) -> np.ndarray:
    """What a keyframe looks like after a VAE-like round trip: slight blur, then JPEG."""
    soft = cv2.GaussianBlur(frame, (0, 0), blur_sigma) if blur_sigma > 0 else frame
    return jpeg(soft, quality)


def add_noise(frame: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian pixel noise of ``sigma`` (0-255 scale), quantised back to ``uint8``."""
    noisy = frame.astype(np.float32) + _rng(seed).normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


# -- frame-level negatives (artifact gate) -------------------------------------------------------

def black_frame(like: np.ndarray, level: float = 4.0, sigma: float = 1.5, seed: int = 0) -> np.ndarray:
    """A "black" frame as a decoder produces it: near-black with a little noise, not exact zeros."""
    return add_noise(np.full_like(like, int(level)), sigma, seed)


def blank_frame(like: np.ndarray, level: float = 118.0, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """A flat mid-grey frame with a little noise (a collapsed decode)."""
    return add_noise(np.full_like(like, int(level)), sigma, seed)


def exposure(frame: np.ndarray, stops: float) -> np.ndarray:
    """Exposure change of ``stops`` applied as a gain in linear light (sRGB decoded and
    re-encoded), clipped: +1 stop blows the highlights, -1.5 stops crushes the shadows."""
    lin = (frame.astype(np.float32) / 255.0) ** 2.2 * (2.0 ** stops)
    return np.clip(np.clip(lin, 0, 1) ** (1 / 2.2) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), sigma)


def insert_frame(clip: np.ndarray, index: int, frame: np.ndarray) -> np.ndarray:
    """``clip`` with ``frame`` inserted before position ``index``."""
    return np.concatenate([clip[:index], frame[None], clip[index:]])


def replace_frame(clip: np.ndarray, index: int, frame: np.ndarray) -> np.ndarray:
    out = clip.copy()
    out[index] = frame
    return out


def frozen(clip: np.ndarray, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """The clip's first frame held for the whole length, each copy with fresh decode noise."""
    return np.stack([add_noise(clip[0], sigma, seed + i) for i in range(len(clip))])


# -- temporal negatives ----------------------------------------------------------------------------

def brightness_flicker(clip: np.ndarray, gain: float = 1.04, period: int = 4, phase: int = 3) -> np.ndarray:
    """Every ``period``-th frame (from ``phase``) brightened by ``gain`` (1.04 = +4 %)."""
    out = clip.copy()
    for i in range(phase, len(clip), period):
        out[i] = np.clip(clip[i].astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
    return out


def luma_step(clip: np.ndarray, start: int, delta: float) -> np.ndarray:
    """Frames from ``start`` on offset by ``delta`` (0-255 scale) on every channel, i.e. a
    luma step of ``delta`` at the interval ``start - 1 -> start`` (a seam jump)."""
    out = clip.copy()
    shifted = clip[start:].astype(np.float32) + delta
    out[start:] = np.clip(shifted + 0.5 * np.sign(delta), 0, 255).astype(np.uint8)
    return out


# -- keyframe negatives ----------------------------------------------------------------------------

def lab_shift(frame: np.ndarray, d_l: float = 0.0, d_a: float = 0.0, d_b: float = 0.0) -> np.ndarray:
    """Shift a frame in CIE Lab (delta-E 76 of the shift = sqrt(dL^2 + da^2 + db^2))."""
    lab = rgb_u8_to_lab(frame)
    lab[..., 0] += d_l
    lab[..., 1] += d_a
    lab[..., 2] += d_b
    return lab_to_rgb_u8(lab)


def translate(frame: np.ndarray, fraction: float) -> np.ndarray:
    """Shift a frame right and down by ``fraction`` of its width/height (edges replicated)."""
    h, w = frame.shape[:2]
    m = np.float32([[1, 0, fraction * w], [0, 1, fraction * h]])
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A frame of another clip brought to ``height`` x ``width`` (area resize)."""
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
