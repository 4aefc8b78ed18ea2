"""Nodes of the ``anime_pipeline/video`` family that move video chunks in and out of a
server losslessly (Ut Video / FFV1 in NUT, 8 or 16 bits per channel): what the driver's
``enhance`` command renders each chunk of a long video with."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from ..core import chunkio
from ..core.validate import InputError, check_images, check_positive

CATEGORY = "anime_pipeline/video"
REPORT_TAG = "AP_REPORT"  # the file's tag holding the report input
BITS = ("8", "16")


def _input_file(name: str, node: str) -> Path:
    import folder_paths

    root = Path(folder_paths.get_input_directory()).resolve()
    path = (root / name).resolve()
    if not name or root not in path.parents:
        raise InputError("chunk", f"{name!r} is not a file name inside the input folder", node)
    if not path.is_file():
        raise InputError("chunk", f"{name!r} not found in the input folder {root}", node)
    return path


class LoadChunk:
    """Read a lossless chunk file from the input folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "chunk": ("STRING", {"default": "", "tooltip": (
                    "File name (with subfolder) in ComfyUI's input folder of a lossless chunk (.nut; older FFV1 "
                    ".mkv ones too), as uploaded by the driver or written by Save Chunk (AP).")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("frames", "fps", "bits")
    OUTPUT_TOOLTIPS = (
        "Every frame of the chunk, exactly as stored (8- or 16-bit values divided by 255 or 65535).",
        "The chunk's frame rate.",
        "Bits per channel of the chunk (8 or 16); wire into Save Chunk (AP) to keep them.",
    )
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Load a lossless video chunk (RGB in NUT: Ut Video for 8 bits, FFV1 for 16 bits per channel). Unlike "
        "the core Load Video, nothing is lost: no 8-bit or 4:2:0 conversion."
    )

    def load(self, chunk):
        node = "AP_LoadChunk"
        path = _input_file(chunk, node)
        try:
            frames, fps, bits = chunkio.load_tensor(path)
        except (ValueError, OSError, av.error.FFmpegError) as exc:
            raise InputError("chunk", f"{chunk!r} cannot be read as a chunk: {exc}", node) from None
        return (frames, float(fps), bits)

    @classmethod
    def IS_CHANGED(cls, chunk):
        try:
            stat = _input_file(chunk, "AP_LoadChunk").stat()
        except InputError:
            return chunk
        return f"{chunk}:{stat.st_size}:{stat.st_mtime_ns}"


class SaveChunk:
    """Write frames as a lossless chunk file to the output folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The frames to save."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.001, "max": 1000.0, "step": 0.001,
                                  "tooltip": "Frame rate stored in the file."}),
                "bits": (list(BITS), {"default": "8", "tooltip": (
                    "Bits per channel: 8 for 8-bit sources, 16 to keep 10/12-bit sources (and every interpolated "
                    "value) exact.")}),
                "filename_prefix": ("STRING", {"default": "ap_chunks/chunk", "tooltip": (
                    "Output file prefix (subfolders allowed), as for Save Image.")}),
            },
            "optional": {
                "report": ("STRING", {"forceInput": True, "tooltip": (
                    "A JSON report to return with the file (e.g. Anime Retime's summary), so whoever reads the "
                    "job's outputs gets the chunk's counts with it; also stored in the file as the tag "
                    "AP_REPORT.")}),
                "raw": ("BOOLEAN", {"default": False, "forceInput": True, "tooltip": (
                    "Store the frames uncompressed (rawvideo, ~4.5x larger, ~5x cheaper to write): for a reader on "
                    "the same machine, as the driver's enhance command is with a local server.")}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)
    OUTPUT_TOOLTIPS = ("The saved chunk's path in the output folder (subfolder/name.nut).",)
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Save frames as a lossless video chunk (RGB in NUT: Ut Video for 8 bits, FFV1 for 16 bits per channel), "
        "so a chunk rendered on a server comes back exactly. Play or convert it with any FFmpeg-based tool."
    )

    def save(self, frames, fps, bits, filename_prefix, report=None, raw=False):
        import folder_paths

        node = "AP_SaveChunk"
        frames = check_images(frames, "frames", node=node, min_frames=1)
        fps = check_positive(fps, "fps", node=node)
        if str(bits) not in BITS:
            raise InputError("bits", f"must be one of {list(BITS)}, got {bits!r}", node)
        h, w = frames.shape[1:3]
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir, w, h)
        filename = f"{name}_{counter:05}_{chunkio.SUFFIX}"
        chunkio.write_chunk(Path(folder) / filename, chunkio.iter_from_tensor(frames, int(bits)),
                            Fraction(fps).limit_denominator(10000), int(bits),
                            tags={REPORT_TAG: report} if report else None, raw=bool(raw))
        ref = {"filename": filename, "subfolder": subfolder, "type": "output"}
        # under "images" too: a RunPod worker-comfyui returns only those files (the report rides in the file)
        ui = {"chunks": [ref], "images": [ref], **({"reports": [report]} if report else {})}
        return {"ui": ui, "result": (f"{subfolder}/{filename}" if subfolder else filename,)}


NODE_CLASS_MAPPINGS = {"AP_LoadChunk": LoadChunk, "AP_SaveChunk": SaveChunk}
NODE_DISPLAY_NAME_MAPPINGS = {"AP_LoadChunk": "Load Chunk (AP)", "AP_SaveChunk": "Save Chunk (AP)"}
