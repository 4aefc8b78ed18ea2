"""Rendering: a plan's jobs turned into ComfyUI workflows and run, resumably.

Owns: templates bound by node title (``workflow``, ``compile``), the check of a plan
against what a server offers (``preflight``), the :class:`~driver.render.executor.Executor`
contract every backend implements and its one-server form (``executor``), and the
scheduler that runs jobs in order with retakes and the review stop (``scheduler``).

May import: the base modules, ``driver.story``, ``driver.outputs`` and the ComfyUI
connection (``driver.comfy``); never ``driver.farm`` (the farm plugs in as an Executor)
or the CLI."""
