"""A ComfyUI at its HTTP boundary, for the routes worker-comfyui's handler calls
(``/upload/image``, ``/prompt``, ``/history/{id}``, ``/view``, ``/interrupt``), whose
outcomes each test scripts. Shapes from ComfyUI 0.3.64 (``server.py``: ``/prompt``
answers 200 ``{"prompt_id", "number", "node_errors"}`` or 400 ``{"error",
"node_errors"}``; ``execution.py``: the history entry with ``status.messages``) and, for
a node type it does not have, newer ComfyUI's ``missing_node_type`` error (ComfyUI PR
#12194, 2026-01-31: ``"Node '<title>' not found. The custom node may not be
installed."``, ``extra_info`` with ``node_id``, ``class_type``, ``node_title``) or
0.3.64's ``invalid_prompt`` ("Cannot execute because node X does not exist.").

Prompts "run" as the unit tests' in-memory server does (:class:`FakeClient`: every
SaveImage / SaveVideo writes a real small PNG / MP4 under its ``filename_prefix``).
``AP_QualityReport`` follows its ``policy`` as the pack's node does: the verdict comes
from ``gate(prompt)``; ``report`` saves the summary card PNG (the report inside) under
``images``; ``stop`` on a failure ends the prompt with an ``execution_error`` whose
message is the pack's :class:`QualityStop` text, and with ``keep_on_stop`` the files of
``SaveImage`` nodes stay in the outputs (saved before the stop), the rest are not."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs

from anime_pipeline.core.contracts import GateResult
from anime_pipeline.core.quality.card import card_png
from anime_pipeline.core.quality.report import QualityStop, build_report
from devkit.standins.http import JsonServer
from tests.unit.driver_fakes import FakeClient, FakeServer, _frames_of


class ScriptedComfy(JsonServer):
    def __init__(self, *, gate=lambda prompt: True, missing: set[str] = frozenset(), new_errors: bool = True,
                 keep_on_stop: bool = False):
        super().__init__()
        self.fake = FakeClient(FakeServer(), gate=gate)
        self.missing, self.new_errors, self.keep_on_stop = set(missing), new_errors, keep_on_stop
        self.prompts: list[dict] = []
        self.route("POST", r"/upload/image", self._upload)
        self.route("POST", r"/prompt", self._prompt)
        self.route("GET", r"/history/(?P<pid>[^/?]+)", self._history)
        self.route("GET", r"/view\?(?P<query>[^#]*)", self._view)
        self.route("POST", r"/interrupt", lambda m, b, h: (200, {}))

    def _upload(self, match, body, headers):
        name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
        self.fake.server.uploads[name] = body
        return 200, {"name": name, "subfolder": "", "type": "input"}

    def _prompt(self, match, body, headers):
        prompt = json.loads(body)["prompt"]
        for nid, node in prompt.items():
            if node["class_type"] in self.missing:
                return 400, {"error": self._missing(nid, node), "node_errors": {}}
        self.prompts.append(prompt)
        pid = str(uuid.uuid4())
        entry = self.fake._execute(prompt, pid)
        for nid, node in prompt.items():
            if node["class_type"] == "AP_QualityReport":
                self._report(entry, pid, nid, node)
        self.fake.server.history[pid] = entry
        return 200, {"prompt_id": pid, "number": len(self.prompts), "node_errors": {}}

    def _missing(self, nid: str, node: dict) -> dict:
        ctype, title = node["class_type"], (node.get("_meta") or {}).get("title") or node["class_type"]
        if not self.new_errors:
            return {"type": "invalid_prompt", "message": f"Cannot execute because node {ctype} does not exist.",
                    "details": f"Node ID '#{nid}'", "extra_info": {}}
        return {"type": "missing_node_type", "message": f"Node '{title}' not found. The custom node may not be "
                "installed.", "details": f"Node ID '#{nid}'",
                "extra_info": {"node_id": nid, "class_type": ctype, "node_title": title}}

    def _report(self, entry: dict, pid: str, nid: str, node: dict) -> None:
        passed = entry["outputs"][nid]["ap_quality_report"][0]["passed"]  # gate(prompt), asked once by the fake
        gate = GateResult("temporal", passed, metrics={"max_ratio": 1.0 if passed else 9.0},
                          failed_frames=[] if passed else [3], reasons=[] if passed else ["ratio 9.0 > 2.0"])
        report = build_report({"gate_1": gate}, n_frames=_frames_of(entry["prompt"][2]), width=32, height=32,
                              label=str(node["inputs"].get("label", "")), policy=node["inputs"]["policy"], node=nid)
        if passed or node["inputs"]["policy"] != "stop":
            sub, _, stem = node["inputs"]["filename_prefix"].rpartition("/")
            self.fake.server.files[f"{sub}/{stem}_00001_.png"] = card_png(report)
            entry["outputs"][nid] = {"ap_quality_report": [report],
                                     "images": [{"filename": f"{stem}_00001_.png", "subfolder": sub, "type": "output"}]}
            return
        prompt = entry["prompt"][2]
        entry["outputs"] = {k: v for k, v in entry["outputs"].items()
                            if self.keep_on_stop and prompt[k]["class_type"] == "SaveImage"}
        error = {"prompt_id": pid, "node_id": nid, "node_type": "AP_QualityReport", "executed": [],
                 "exception_message": str(QualityStop(report)), "exception_type": "QualityStop",
                 "traceback": [], "current_inputs": {}, "current_outputs": {}}
        entry["status"] = {"status_str": "error", "completed": False,
                           "messages": [["execution_start", {"prompt_id": pid}], ["execution_error", error]]}

    def _history(self, match, body, headers):
        entry = self.fake.server.history.get(match["pid"])
        return 200, ({match["pid"]: entry} if entry else {})

    def _view(self, match, body, headers):
        q = {k: v[0] for k, v in parse_qs(match["query"]).items()}
        blob = self.fake.server.files.get(f"{q.get('subfolder', '')}/{q['filename']}")
        return (200, blob) if blob is not None else (404, {"error": "not found"})
