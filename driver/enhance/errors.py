"""The enhance command's errors (exit codes 22-24, after the managed-ComfyUI ones, 13-19, and
the review app's, 20-21; a full disk is :class:`driver.errors.DiskFull`, 17) and those of
enhancing at scale (30-31)."""

from __future__ import annotations

from driver.errors import DriverError


class InputUnreadable(DriverError, code="input_unreadable", exit_code=22):
    """The input is not a video this command can read: not a media file, truncated or
    corrupt, no video stream, or a codec FFmpeg cannot decode."""


class OutputRefused(DriverError, code="output_refused", exit_code=23):
    """The output path exists (without ``--overwrite``) or is the input itself."""


class OptionsInvalid(DriverError, code="options_invalid", exit_code=24):
    """An option does not fit the input: ``--clip`` outside the duration, a bad frame
    rate, scale or preset value."""


class ChunkTooLarge(DriverError, code="chunk_too_large", exit_code=30):
    """Even the smallest chunk of the input does not fit the backend's payload limit
    (a RunPod Serverless request or result, a ComfyUI upload); the message names it."""


class WorkFolderNewer(DriverError, code="enhance_manifest_newer", exit_code=31):
    """The work folder's ``enhance.json`` was written by a newer driver (its version is
    unknown here): nothing in it is reused or overwritten."""
