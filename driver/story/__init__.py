"""The storyboard and the plan: what the producer asked for, and the jobs that make it.

Owns: reading and validating ``storyboard.json`` (``storyboard``) and turning it, with
the project config, into jobs in dependency order with their seeds, frame counts and
GPU-time estimates (``plan``). Pure: no server, no run folder.

May import: the driver's base modules (``driver.errors``, ``driver.files``,
``driver.config``, ``driver.validation``) and the pack's ``anime_pipeline.core``."""
