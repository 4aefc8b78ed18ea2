"""Model loads on a real CPU ComfyUI (default cache, as the harness and the driver start
it) equal the scheduler's prediction. Two distinct model sets: the tiny random WAN files
under their own names (standard FLF shots) and the same files linked under other names
(split FLF shots, the "T2I" stand-in: other names are other loader signatures, so
ComfyUI loads them again). Shots alternate between the two, so today's shot-after-shot
order reloads at every shot; the driver's run on one ``--server`` (a pool of one, with the
dispatcher's affinity of the default config) renders each set's jobs together. The run records,
per attempt, which loader nodes ran (ComfyUI's ``execution_cached`` event): their sum
must be the loads predicted by the dispatcher's own one-server schedule of the plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from devkit.harness.comfy import link_model, tiny_models
from driver.cli import main
from driver.config import load_config
from driver.farm.cli import load_costs
from driver.farm.estimate import _work
from driver.farm.simulate import schedule
from driver.render.compile import Compiler
from driver.render.models import model_set, predicted_loads
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard

pytestmark = pytest.mark.integration

STAND_IN = {"High Noise Model": ("unet_name", "diffusion_models", "tiny_wan22_i2v_high.safetensors"),
            "Low Noise Model": ("unet_name", "diffusion_models", "tiny_wan22_i2v_low.safetensors"),
            "VAE": ("vae_name", "vae", "tiny_wan21_vae.safetensors")}


def _setup(tmp_path, models_dir, src):
    """Storyboard (4 shots, the two sets alternating) and config; the second set linked."""
    overrides = {}
    for title, (inp, folder, name) in STAND_IN.items():
        link_model(models_dir, folder, src / name)
        overrides[title] = {inp: link_model(models_dir, folder, src / name, f"standin_{name}")}
    sb_dir = tmp_path / "sb"
    sb_dir.mkdir()
    for i, role in enumerate(("first", "hero", "last")):
        Image.fromarray(np.full((80, 64, 3), (40 + 80 * i, 120, 200 - 60 * i), np.uint8)).save(sb_dir / f"{role}.png")
    flf = {"generation_approach": "standard_flf", "duration_s": 0.25, "motion_prompt": "moves",
           "keyframes": {"first": "first.png", "last": "last.png"}}
    split = {"generation_approach": "triptych_split_flf", "duration_s": 0.6, "motion_prompt": "moves",
             "keyframes": {"first": "first.png", "hero": "hero.png", "last": "last.png"}}
    shots = [{"scene": 1, "take": t, "seed": 10 + t, **(flf if t % 2 else split)} for t in range(1, 5)]
    doc = {"version": 3, "project": "LOAD", "episode": 1, "delivery": {"width": 64, "height": 64, "fps": 24},
           "model_profile": "tiny_wan", "shots": shots}
    (sb_dir / "sb.json").write_text(json.dumps(doc))
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "test_tiny_wan.yaml").read_text())
    cfg["template_overrides"] = {"wan22_split_flf": overrides}
    cfg["retakes"] = {"max_retakes": 0}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return load_storyboard(sb_dir / "sb.json"), load_config(tmp_path / "cfg.yaml")


def test_recorded_model_loads_equal_the_prediction(comfy_server_factory, comfy_install, tmp_path):
    server = comfy_server_factory()  # fresh: nothing cached from other tests
    sb, cfg = _setup(tmp_path, server.models_dir, tiny_models(comfy_install))
    plan = make_plan(sb, cfg)
    models = {j.id: model_set(Compiler(sb, cfg, "predict").compile(j).prompt) for j in plan.jobs}
    assert len({m for m in models.values() if m}) >= 2 and all(m is not None for m in models.values())
    costs = load_costs(cfg)  # what the run uses: the config's scheduling (affinity on by default)
    assert costs is not None
    work = _work(plan.jobs, models)
    affinity = schedule(work, 1, policy="critical_path", costs=costs, affinity=True)
    today = schedule(work, 1, policy="storyboard", costs=costs)
    predicted = predicted_loads([models[k] for k, _ in affinity.order])
    assert predicted < predicted_loads([models[k] for k, _ in today.order])

    run_dir = tmp_path / "run"  # the driver's own run: one --server is a pool of one
    code = main(["run", str(sb.path), "--server", server.url, "--config", str(tmp_path / "cfg.yaml"),
                 "--out", str(run_dir), "--plain"])
    data = json.loads((run_dir / "run_manifest.json").read_text())
    attempts = sorted((a for s in data["shots"].values() for j in s["jobs"].values() for a in j["attempts"]),
                      key=lambda a: a["started_at"])
    assert code in (0, 9) and len(attempts) == len(plan.jobs), server.log_tail()  # 9: a gate failed, no retake
    assert all(a["loaders"] is not None for a in attempts)
    recorded = sum(len(a["loaders"]["ran"]) for a in attempts)
    assert recorded == predicted, [(a["prompt_id"], a["loaders"]) for a in attempts]
