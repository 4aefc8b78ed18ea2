"""Frozen ground truth for the motion gating (cut / hold / motion), built at run time
from real template clips; see :mod:`devkit.groundtruth.build`."""
