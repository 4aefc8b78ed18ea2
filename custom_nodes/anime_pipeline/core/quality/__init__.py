"""Quality gates: pure metrics and pass/fail rules on IMAGE batches.

One module per gate (``artifacts``, ``temporal``, ``fidelity``, ``seam``,
``identity``), the report and its summary card (``report``, ``card``), colour
maths (``colour``); the calibration footage builders are development code (``devkit.calibration``).
Each gate returns a :class:`~anime_pipeline.core.contracts.GateResult`.
"""
