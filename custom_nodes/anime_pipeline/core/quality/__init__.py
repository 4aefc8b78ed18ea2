"""Quality gates: pure metrics and pass/fail rules on IMAGE batches.

One module per gate (``artifacts``, ``temporal``, ``fidelity``, ``seam``,
``identity``), the report and its summary card (``report``, ``card``), colour
maths (``colour``) and the calibration footage builders (``calibration``).
Each gate returns a :class:`~anime_pipeline.core.contracts.GateResult`.
"""
