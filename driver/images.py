"""The storyboard's own images, read safely: each file opened once (never through a
symlink swapped in after the storyboard was checked), its bytes decoded and size-checked,
and those very bytes used (copied into the run folder, uploaded). A truncated PNG, a text
file named ``.png`` or a symlink to a file outside the storyboard's folder is refused with
its path and the cause in one line.

Imports only the error base."""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

from PIL import Image

from driver.errors import OutputMissing

#: Largest side of an input image (ComfyUI's own ``MAX_RESOLUTION``): a keyframe or strip
#: larger than this could not be fed to any node of the templates.
MAX_SIDE = 16384
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class SourceRejected(OutputMissing):
    """A storyboard image changed during the run: replaced by a symlink, no longer the file
    whose hash the workflow was compiled with, or no longer a decodable image. Nothing is
    uploaded; finished work is kept (check the image, rerun to resume)."""

    code = "source_rejected"
    exit_code = 26
    precedence = 55


def image_problem(data: bytes) -> str | None:
    """What is wrong with ``data`` as an input image (undecodable, truncated, empty, too
    large), or None. Decodes every pixel: a truncated PNG is refused here although ComfyUI
    would load it (its missing rows black)."""
    if not data:
        return "the file is empty"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
                    return f"{width}x{height} pixels is outside 1..{MAX_SIDE} on a side"
                im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        return f"not a decodable image ({exc})"
    return None


def read_once(path: Path) -> bytes:
    """The bytes of ``path`` (an absolute, resolved path), opened once without following a
    symlink and refused when any part of the path now leads elsewhere (a folder swapped for a
    symlink) or it is not a regular file. Raises :class:`SourceRejected`."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        cause = "it is now a symlink (replaced during the run?)" if path.is_symlink() else (exc.strerror or str(exc))
        raise SourceRejected(f"{path}: {cause}; nothing was uploaded") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SourceRejected(f"{path}: not a regular file; nothing was uploaded")
        real = os.path.realpath(path)
        try:
            same = os.path.samestat(info, os.stat(real))
        except OSError:
            same = False
        if real != os.path.abspath(path) or not same:
            raise SourceRejected(f"{path}: now leads to {real} (a folder replaced by a symlink during the run?); "
                                 "nothing was uploaded")
        return fh.read()


def read_image(path: Path) -> bytes:
    """:func:`read_once`, then the bytes checked as an image (:func:`image_problem`)."""
    data = read_once(path)
    problem = image_problem(data) if Path(path).suffix.lower() in IMAGE_SUFFIXES else None
    if problem:
        raise SourceRejected(f"{path}: {problem}; nothing was uploaded")
    return data
