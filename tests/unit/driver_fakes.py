"""Test doubles for the driver's unit tests: a ComfyUI server in memory (the client side
of it: the methods the executor calls) and small storyboard builders."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import av
import numpy as np
from PIL import Image

from driver.comfy.client import ComfyClient
from driver.errors import LostContact, PromptRejected

SAVERS = {"SaveImage": "png", "SaveVideo": "mp4", "AP_SaveChunk": "mkv"}


def _media(kind: str, digest: str, frames: int) -> bytes:
    """A real small PNG or MP4 whose colour depends on ``digest`` (distinct per prompt)."""
    colour = tuple(bytes.fromhex(digest[:6]))
    pixels = np.full((32, 32, 3), colour, np.uint8)
    buf = io.BytesIO()
    if kind == "png":
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()
    with av.open(buf, "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=24)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return buf.getvalue()


def _frames_of(prompt: dict) -> int:
    """The frame count the driver's templates ask for."""
    for node in prompt.values():
        title, inputs = (node.get("_meta") or {}).get("title"), node["inputs"]
        if title == "Fit Frames":
            return inputs["length"]
        if title == "Hold":
            return inputs["amount"]
        if title == "Push":
            return math.floor(inputs["duration_s"] * inputs["fps"] + 0.5)
    return 1


def png(path: Path, colour=(200, 80, 40), size=(48, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)
    return path


def report(passed: bool, *, bad_frames: int = 0) -> dict:
    return {"version": 1, "passed": passed,
            "gates": [{"name": "artifact", "passed": True, "metrics": {"black_frames": 0}, "failed_frames": []},
                      {"name": "temporal", "passed": passed, "metrics": {"max_ratio": 1.0 if passed else 9.0},
                       "failed_frames": list(range(bad_frames))}]}


class FakeServer:
    """State shared by the clients of one fake server (survives a client, like a real server)."""

    def __init__(self):
        self.history: dict[str, dict] = {}
        self.queued: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.submitted: list[str] = []

    def restart(self) -> None:
        """History and queue are lost on a restart; output files stay on disk."""
        self.history.clear()
        self.queued.clear()


class FakeClient:
    """Implements what :class:`driver.render.executor.Executor` uses of ``ComfyClient``.

    ``gate(prompt) -> bool`` decides AP_QualityReport verdicts; ``reject(prompt)`` returns
    a node_errors dict to reject a prompt with; ``lose_after_submit`` makes ``run`` queue
    the prompt and then lose contact (the job keeps running on the server)."""

    output_files = staticmethod(ComfyClient.output_files)
    check_entry = staticmethod(ComfyClient.check_entry)

    def __init__(self, server: FakeServer | None = None, url: str = "http://fake:8188", *, gate=None, reject=None,
                 lose_after_submit: set[str] | None = None):
        self.server = server or FakeServer()
        self.url = url
        self.client_id = "fake-client"
        self.gate = gate or (lambda prompt: True)
        self.reject = reject or (lambda prompt: None)
        self.lose_after_submit = lose_after_submit or set()

    # -- files
    def upload_image(self, path, subfolder="", *, overwrite=True, name=None):
        name = name or Path(path).name
        key = f"{subfolder}/{name}" if subfolder else name
        self.server.uploads[key] = Path(path).read_bytes()
        return key

    def download(self, ref, dest):
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.server.files[f"{ref.get('subfolder', '')}/{ref['filename']}"])
        return dest

    # -- prompts
    def _execute(self, prompt: dict, prompt_id: str) -> dict:
        for node in prompt.values():
            if node["class_type"] == "LoadImage" and node["inputs"]["image"] not in self.server.uploads:
                raise AssertionError(f"LoadImage of {node['inputs']['image']} that was never uploaded")
        outputs = {}
        digest = hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
        for nid, node in prompt.items():
            ext = SAVERS.get(node["class_type"])
            if ext:
                prefix = node["inputs"]["filename_prefix"]
                sub, _, stem = prefix.rpartition("/")
                fname = f"{stem}_00001_.{ext}"
                node_digest = hashlib.sha256(f"{digest}:{nid}".encode()).hexdigest()
                self.server.files[f"{sub}/{fname}"] = _media(ext, node_digest, _frames_of(prompt))
                outputs[nid] = {"images": [{"filename": fname, "subfolder": sub, "type": "output"}]}
            elif node["class_type"] == "AP_QualityReport":
                outputs[nid] = {"ap_quality_report": [report(self.gate(prompt))]}
        messages = [["execution_start", {"prompt_id": prompt_id, "timestamp": 1000}],
                    ["execution_success", {"prompt_id": prompt_id, "timestamp": 1250}]]
        return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": outputs,
                "status": {"status_str": "success", "completed": True, "messages": messages}}

    def run(self, prompt, *, prompt_id, timeout=600.0, on_event=None, extra_data=None):
        node_errors = self.reject(prompt)
        if node_errors:
            raise PromptRejected("rejected by the fake server", node_errors=node_errors)
        self.server.submitted.append(prompt_id)
        if on_event:
            on_event("execution_start", {"prompt_id": prompt_id})
        entry = self._execute(prompt, prompt_id)
        if prompt_id in self.lose_after_submit:
            self.server.queued.add(prompt_id)
            self.server.pending = getattr(self.server, "pending", {})
            self.server.pending[prompt_id] = entry
            raise LostContact(f"server {self.url} stopped answering while {prompt_id} was in flight")
        self.server.history[prompt_id] = entry
        return entry

    def history(self, prompt_id):
        return self.server.history.get(prompt_id)

    def is_queued(self, prompt_id):
        return prompt_id in self.server.queued

    def wait_for(self, prompt_id, *, deadline=None, timeout=600.0, interval=0.25):
        entry = self.server.pending.pop(prompt_id)
        self.server.queued.discard(prompt_id)
        self.server.history[prompt_id] = entry
        return entry


def write_storyboard(folder: Path, shots: list[dict], **top) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 3, "project": "TST", "episode": 7, "delivery": {"width": 64, "height": 96, "fps": 24},
           "model_profile": "wan22_sdxl", "characters": {"AKI": {"registry": "aki"}}, "shots": shots}
    doc.update(top)
    path = folder / "storyboard.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def shot(scene: int, take: int, approach: str, **fields) -> dict:
    base = {"scene": scene, "take": take, "generation_approach": approach, "duration_s": 1.0,
            "seed": 100 * scene + take}
    if approach in ("held_frame_push", "held_frame_static"):
        base["hero_prompt"] = "a still"
    elif approach == "standard_flf":
        base.update(first_prompt="first", last_prompt="last", motion_prompt="walks")
    else:
        base.update(triptych_prompt="three panels", motion_prompt="walks")
    base.update(fields)
    return base
