"""glibc heap settings for the enhance command's process.

The command decodes, converts and encodes a few megabytes per frame, allocated and freed
frame after frame. glibc gives a freed block that large back to the kernel (``munmap``, or
trimming the heap's top), so the next frame's array is fresh memory again and every 4 KB
page of it faults on first touch: on this project's 2-core VMs about 3 us a page, 0.35 s
of system time per pass over a 228-frame 1280x720 video, three passes a run. Raising the
mmap and trim thresholds keeps freed blocks in the heap for the next frame instead (the
process keeps up to ``TRIM_BYTES`` of freed memory). Elsewhere (no glibc, not Linux)
nothing changes."""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_BYTES = 64 << 20  # blocks below this come from the heap (a 4K RGB48 frame is 50 MB)
TRIM_BYTES = 256 << 20  # freed memory above this at the heap's top goes back to the kernel


def keep_freed_blocks() -> bool:
    """Apply the thresholds above to this process; True when glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs with
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    log.debug("heap: mmap threshold %d MB, trim threshold %d MB: %s", MMAP_BYTES >> 20, TRIM_BYTES >> 20,
              "set" if ok else "refused")
    return ok
