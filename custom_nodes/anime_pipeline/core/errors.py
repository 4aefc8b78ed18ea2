"""The pack's input error, in a module with no dependencies so that torch-free modules
(``core.segments``, imported by the driver) raise the same error type as the rest."""

from __future__ import annotations


class InputError(ValueError):
    """A node input is unusable. ``str(err)`` names the input and the values."""

    def __init__(self, input_name: str, problem: str, node: str | None = None):
        self.input_name = input_name
        self.node = node
        where = f"{node}.{input_name}" if node else input_name
        super().__init__(f"{where}: {problem}")
