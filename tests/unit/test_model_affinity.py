"""Model sets read from compiled workflows, load costs, and the dispatcher's affinity:
on storyboard_ep_001 with one server, the order it gives has the least reload cost the
dependencies and the critical-path bound allow (checked against an exhaustive search)."""

from __future__ import annotations

import logging
import math
import random
from functools import lru_cache

import pytest

from driver.config import load_config
from driver.errors import ConfigError
from driver.farm.affinity import STORAGE_GBPS, LoadCosts
from driver.farm.dispatch import Dispatcher
from driver.farm.estimate import _work, with_loads
from driver.farm.load_floor import least_load_s
from driver.farm.simulate import SimJob, priorities, schedule
from driver.render.compile import Compiler
from driver.render.models import Loader, loads, model_set, models_of, predicted_loads, ran_and_cached
from driver.runner import dry_run
from driver.story.plan import make_plan
from driver.story.storyboard import REPO_ROOT, load_storyboard

EXAMPLE = REPO_ROOT / "storyboards" / "storyboard_ep_001.json"


@pytest.fixture(scope="module")
def episode():
    sb, cfg = load_storyboard(EXAMPLE), load_config(REPO_ROOT / "configs" / "project.example.yaml")
    plan = make_plan(sb, cfg)
    compiler = Compiler(sb, cfg, "test")
    prompts = {j.id: compiler.compile(j).prompt for j in plan.jobs}
    return sb, cfg, plan, prompts, {k: model_set(p) for k, p in prompts.items()}


def test_model_sets_name_every_loader_of_the_compiled_workflows(episode):
    *_, plan, prompts, models = episode
    kinds = {j.template: sorted(ld.kind for ld in models[j.id]) for j in plan.jobs}
    assert kinds["t2i_sdxl"][0] == "checkpoint"
    assert kinds["wan22_flf"] == ["lora", "text_encoder", "unet", "unet", "vae"]
    assert kinds["held_push"] == [] and kinds["triptych_split"] == []
    wan = next(m for k, m in models.items() if k.endswith("video") and m)
    assert {f for ld in wan for f in ld.files} >= {"wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                                                  "umt5_xxl_fp8_e4m3fn_scaled.safetensors"}
    # the same loader with the same inputs has the same signature in every job (ComfyUI's cache key)
    ckpts = {ld.signature for m in models.values() for ld in m if ld.kind == "checkpoint"}
    assert len(ckpts) == 1


def test_a_custom_loader_makes_the_set_unreadable(episode):
    *_, prompts, _ = episode
    prompt = dict(next(p for k, p in prompts.items() if k.endswith("kf-hero")))
    prompt["99"] = {"class_type": "MyStudioLoader", "inputs": {"path": "x.safetensors"}}
    m = models_of(prompt)
    assert m.unknown == ("99 (MyStudioLoader)",) and m.set is None
    assert loads(None, None) == 0


def test_loads_count_loaders_not_held_by_the_previous_prompt(episode):
    *_, models = episode
    a = models["S02T01-kf-first"]
    b = models["S02T01-video"]
    assert loads(None, a) == len(a) and loads(a, a) == 0 and loads(a, b) == len(b)
    assert predicted_loads([a, a, b, frozenset(), b]) == len(a) + 2 * len(b)  # a model-free prompt empties the cache


def test_ran_and_cached_reads_the_execution_cached_event(episode):
    *_, prompts, _ = episode
    prompt = prompts["S02T01-video"]
    ids = sorted(models_of(prompt).nodes)
    entry = {"status": {"messages": [["execution_start", {}], ["execution_cached", {"nodes": [ids[0], "999"]}]]}}
    assert ran_and_cached(prompt, entry) == {"ran": ids[1:], "cached": [ids[0]]}
    assert ran_and_cached(prompt, {"status": {"messages": []}}) is None  # no event: not known


def _least_reload_cost(work, costs: LoadCosts) -> float:
    """Exhaustive: the least load cost over every one-server order that keeps the
    dependencies and never starts a job whose priority is more than ``slack_s`` worse
    than the best ready one (dynamic programming over the set of jobs done)."""
    prio = priorities(work, "critical_path")
    idx = {j.key: i for i, j in enumerate(work)}
    deps = [sum(1 << idx[d] for d in j.deps) for j in work]
    full = (1 << len(work)) - 1

    @lru_cache(None)
    def best(done: int, state) -> float:
        if done == full:
            return 0.0
        ready = [i for i in range(len(work)) if not done >> i & 1 and deps[i] & done == deps[i]]
        bound = min(prio[work[i].key] for i in ready) + costs.slack_s
        return min(costs.cost(state, work[i].models) + best(done | 1 << i, costs.after(state, work[i].models))
                   for i in ready if prio[work[i].key] <= bound)
    return best(0, None)


@pytest.mark.parametrize("slack_s", [0.0, 60.0, 120.0, float("inf")])
def test_one_server_order_of_the_example_has_the_least_reload_cost_allowed(episode, slack_s):
    *_, plan, _, models = episode
    work = _work(plan.jobs, models)
    costs = LoadCosts(slack_s=slack_s)
    r = schedule(work, 1, policy="critical_path", costs=costs, affinity=True)
    order = [k for k, _ in r.order]
    assert sorted(order) == sorted(j.key for j in work)
    assert all(order.index(d) < order.index(j.key) for j in work for d in j.deps)
    assert r.extra["load_s"] == pytest.approx(_least_reload_cost(work, costs))
    today = schedule(work, 1, policy="storyboard", costs=costs)
    assert r.extra["load_s"] <= today.extra["load_s"]
    if slack_s >= 120.0:  # the default bound already lets keyframes and videos group
        assert r.extra["load_s"] < 0.5 * today.extra["load_s"]
        assert predicted_loads([models[k] for k in order]) == r.extra["loads_per_server"][0]


def test_the_dispatcher_never_passes_over_more_than_the_slack(episode):
    *_, models = episode
    sets = list({m for m in models.values()})
    rng = random.Random(3)
    costs = LoadCosts(slack_s=50.0)
    disp = Dispatcher(costs)
    for name in ("a", "b"):
        disp.add_server(name)
    waiting: dict[int, float] = {}
    for step in range(300):
        key = step
        waiting[key] = rng.uniform(-300, 0)
        disp.request(key, priority=waiting[key], models=rng.choice(sets))
        if step % 3 == 0:
            for k, _server in disp.assign():
                assert waiting[k] <= min(waiting.values()) + costs.slack_s
                del waiting[k]
                disp.release(k)


def test_load_costs_default_and_lru(episode, caplog):
    *_, models = episode
    t2i, wan = models["S02T01-kf-first"], models["S02T01-video"]
    nvme = LoadCosts(storage="nvme")
    assert nvme.cost(None, wan) == pytest.approx(sum(nvme.gb(ld) for ld in wan) / STORAGE_GBPS["nvme"])
    state = nvme.after(nvme.after(None, wan), t2i)
    assert nvme.cost(state, wan) == nvme.cost(None, wan)  # default cache: switching back reloads from disk
    lru = LoadCosts(storage="network_volume", cache="lru", ram_gb=64, vram_gb=24)
    state = lru.after(lru.after(None, wan), t2i)
    assert 0 < lru.cost(state, wan) < 0.1 * lru.cost(None, wan)  # from RAM, not the volume
    roomy = LoadCosts(cache="lru", ram_gb=64, vram_gb=80)
    assert roomy.cost(roomy.after(roomy.after(None, wan), t2i), wan) == 0  # both fit on the GPU
    tight = LoadCosts(cache="lru", ram_gb=10)
    assert tight.cost(tight.after(tight.after(None, wan), t2i), wan) == tight.cost(None, wan)  # evicted
    with caplog.at_level(logging.WARNING):
        assert LoadCosts(storage="tape").gbps == STORAGE_GBPS["network_volume"]
    assert "no load throughput known for storage 'tape'" in caplog.text
    with pytest.raises(ValueError, match="cache must be one of"):
        LoadCosts(cache="none")


def test_dry_run_shows_sampling_load_and_loads_per_server(episode, tmp_path, caplog):
    sb, cfg, plan, *_ = episode
    with caplog.at_level(logging.INFO):
        dry_run(sb, cfg, plan, tmp_path, n_servers=2)
    text = caplog.text
    assert "model loads from network_volume at 0.30 GB/s, ComfyUI cache default" in text
    for row in ("today", "affinity", "floor (no loads)"):
        assert f"estimate: {row}" in text
    rows = with_loads(plan.jobs, {k: model_set(p) for k, p in episode[3].items()}, 2, LoadCosts())
    assert rows[2].load_s == 0 and rows[0].sampling_s == rows[1].sampling_s == pytest.approx(plan.estimate_s, abs=0.1)
    assert rows[1].load_s < rows[0].load_s and len(rows[0].loads_per_server) == 2


def test_scheduling_config_is_checked(tmp_path):
    (tmp_path / "c.yaml").write_text("scheduling: {comfyui_cache: forever}\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "c.yaml")


def test_a_short_job_waits_for_the_busy_server_that_has_its_models(episode):
    *_, models = episode
    t2i = models["S02T01-kf-first"]
    costs = LoadCosts()  # network volume: the checkpoint loads in ~24 s, far longer than a 4 s keyframe
    disp = Dispatcher(costs)
    for name in ("a", "b"):
        disp.add_server(name)
    disp.request("kf1", priority=-10, models=t2i, estimate=4.0)
    ((_, holder),) = disp.assign()
    other = "b" if holder == "a" else "a"
    disp.request("kf2", priority=-9, models=t2i, estimate=4.0)
    disp.request("long", priority=-8, models=t2i, estimate=600.0)  # worth its own load, queued behind kf2
    assert disp.assign() == [] and disp.is_waiting("kf2")  # the free server stays idle
    disp.release("kf1")
    assert dict(disp.assign()) == {"kf2": holder, "long": other}  # the holder takes the short one
    disp.release("kf2")
    disp.request("kf3", priority=-7, models=t2i, estimate=4.0)
    assert disp.assign() == [("kf3", holder)]
    disp.release("long")
    disp.request("kf4", priority=-6, models=t2i, estimate=4.0)
    assert disp.assign() == [("kf4", other)]  # it holds the set now: nothing to load


def test_a_job_without_an_estimate_is_never_held_back(episode):
    *_, models = episode
    disp = Dispatcher(LoadCosts())
    for name in ("a", "b"):
        disp.add_server(name)
    disp.request("kf1", priority=-10, models=models["S02T01-kf-first"], estimate=4.0)
    disp.request("kf2", priority=-9, models=models["S02T01-kf-first"])
    assert len(disp.assign()) == 2


def test_a_held_back_job_goes_elsewhere_when_the_holder_goes_down(episode):
    *_, models = episode
    t2i = models["S02T01-kf-first"]
    disp = Dispatcher(LoadCosts())
    for name in ("a", "b"):
        disp.add_server(name)
    disp.request("kf1", priority=-10, models=t2i, estimate=4.0)
    ((_, holder),) = disp.assign()
    disp.request("kf2", priority=-9, models=t2i, estimate=4.0)
    assert disp.assign() == []
    assert disp.mark_down(holder) == ["kf1"]
    assert disp.assign() == [("kf2", "b" if holder == "a" else "a")]


def test_least_load_is_a_lower_bound_of_every_simulated_schedule(episode):
    *_, plan, _, models = episode
    work = _work(plan.jobs, models)
    for storage, cache in (("network_volume", "default"), ("network_volume", "lru"), ("nvme", "default")):
        costs = LoadCosts(storage=storage, cache=cache, slack_s=300.0)
        for n in (1, 2, 4):
            for policy, affinity in (("storyboard", False), ("critical_path", False), ("critical_path", True)):
                r = schedule(work, n, policy=policy, costs=costs, affinity=affinity)
                least = least_load_s(work, n, costs, r.makespan_s)
                assert 0 < least <= r.extra["load_s"] + 1e-6, (storage, cache, n, policy, affinity)


def test_least_load_by_hand():
    big = Loader("unet", "UNETLoader", ("big.safetensors",), "u")
    lora = Loader("lora", "AP_ApplyLoraStack", (), "l")
    jobs = [SimJob(i, i, 100.0, 100.0, (), frozenset({big, lora} if i else {big})) for i in range(4)]
    costs = LoadCosts(gbps=1.0, sizes={"big.safetensors": 10.0})  # 10 s; the LoRA 0.3 s on 3 jobs
    assert least_load_s(jobs, 4, costs, 1000.0) == pytest.approx(10.0 + 0.3)  # one server does it all
    assert least_load_s(jobs, 4, costs, 210.0) == pytest.approx(2 * 10.0 + 2 * 0.3)  # 400 s / 200 s: two
    assert least_load_s(jobs, 4, costs, 109.0) == math.inf  # 100 s of work after 10 s of load: none fits
    assert least_load_s(jobs, 1, costs, 300.0) == math.inf  # one server cannot sample 400 s in 300 s
