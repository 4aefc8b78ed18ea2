"""Nodes of the ``anime_pipeline/quality`` family: quality gates and the quality report.

Each gate passes its frames through unchanged and outputs an ``AP_GATE_RESULT``
(``core.contracts.GateResult``) plus the same result as JSON. ``AP_QualityReport``
collects up to eight results, writes the report (UI key ``ap_quality_report``) and a
summary card PNG, and with ``policy = stop`` raises so nothing wired from its
``frames`` output runs. The measurements live in ``core/quality``; every default
threshold was measured there (``benchmarks/eval_gates.py``, ``docs/quality_report.md``).
"""

from .gates import ArtifactGate, KeyframeFidelityGate, SeamGate, TemporalGate
from .identity import IdentityGate
from .report import QualityReport

NODE_CLASS_MAPPINGS = {
    "AP_ArtifactGate": ArtifactGate,
    "AP_TemporalGate": TemporalGate,
    "AP_KeyframeFidelityGate": KeyframeFidelityGate,
    "AP_SeamGate": SeamGate,
    "AP_IdentityGate": IdentityGate,
    "AP_QualityReport": QualityReport,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AP_ArtifactGate": "Artifact Gate (AP)",
    "AP_TemporalGate": "Temporal Gate (AP)",
    "AP_KeyframeFidelityGate": "Keyframe Fidelity Gate (AP)",
    "AP_SeamGate": "Seam Gate (AP)",
    "AP_IdentityGate": "Identity Gate (AP)",
    "AP_QualityReport": "Quality Report (AP)",
}
