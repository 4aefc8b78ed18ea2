"""Command line of the farm: options for ``run`` and the ``farm`` command.

    python -m driver run STORYBOARD --server URL --server URL ...        a pool of servers
    python -m driver run STORYBOARD --farm runpod --pods N --gpu-type "NVIDIA GeForce RTX 4090"
                                    [--network-volume ID] [--image IMG | --template ID]
                                    [--terminate] [--max-cost-usd X]
    python -m driver run STORYBOARD --endpoint runpod:ENDPOINT_ID [--endpoint-slots N]
    python -m driver farm up --pods N --gpu-type "..." [--prefix P] [...]   pods for --server
    python -m driver farm status [--prefix P] [--json]
    python -m driver farm down [--prefix P] [--terminate]

The API key comes from ``RUNPOD_API_KEY`` or the runpod SDK's config; it is never
printed. ``RUNPOD_API_BASE_URL`` / ``--runpod-api-url`` and ``--pod-url-template`` point
the pod commands elsewhere (tests use local stand-ins)."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging

from .affinity import STORAGE_GBPS, LoadCosts
from .backend import FarmOptions
from .errors import FarmError
from .estimate import Estimate, format_loads, format_table, table, with_loads
from .pod_orphans import find_pods, stop_pods
from .redact import install_log_redaction, resolve_api_key
from .runpod_api import POD_IMAGE_ENV, PodSpec, RunPodApi
from .runpod_pods import PROXY_TEMPLATE, PodFleet
from .serverless import DEFAULT_BASE_URL

log = logging.getLogger("driver.farm")

DEFAULT_PREFIX = "ap-"


def _pod_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("RunPod pods")
    g.add_argument("--pods", type=int, default=1, help="number of pods (default 1)")
    g.add_argument("--gpu-type", default=PodSpec.gpu_type, help='GPU type id, e.g. "NVIDIA L40S"')
    g.add_argument("--cloud", choices=("SECURE", "COMMUNITY", "ALL"), default="SECURE")
    g.add_argument("--network-volume", metavar="ID", help="network volume with the models (mounted at /workspace)")
    g.add_argument("--data-center", metavar="ID", help="data center (default: the network volume's)")
    g.add_argument("--image", help=f"pod image with ComfyUI and this pack, built from docker/pod/Dockerfile "
                   f"(docker/README.md); default ${POD_IMAGE_ENV}; there is no built-in default")
    g.add_argument("--template", metavar="ID", help="RunPod template instead of --image")
    g.add_argument("--container-disk-gb", type=int, default=PodSpec.container_disk_gb)
    g.add_argument("--pod-ready-timeout", type=float, default=1200.0, metavar="S",
                   help="seconds for a pod's ComfyUI to answer before it is stopped (default 1200)")
    g.add_argument("--pod-url-template", default=PROXY_TEMPLATE,
                   help="pod ComfyUI URL: the proxy (default) or http://{ip}:{port} (public IP, mapped 8188)")
    g.add_argument("--runpod-api-url", metavar="URL", help="RunPod API base (default https://api.runpod.io)")
    g.add_argument("--terminate", action="store_true", help="terminate pods at the end instead of stopping them")


def add_run_options(r: argparse.ArgumentParser) -> None:
    """Farm options of ``python -m driver run``."""
    g = r.add_argument_group("render farm")
    g.add_argument("--farm", choices=("runpod",), help="rent RunPod pods for this run (stopped at the end)")
    g.add_argument("--endpoint", metavar="runpod:ID", help="render on a RunPod Serverless worker-comfyui endpoint")
    g.add_argument("--endpoint-slots", type=int, default=4, metavar="N", help="jobs in flight on the endpoint")
    g.add_argument("--endpoint-url", default=DEFAULT_BASE_URL, help=argparse.SUPPRESS)
    g.add_argument("--slots", type=int, default=1, metavar="N", help="jobs in flight per server (default 1)")
    g.add_argument("--max-cost-usd", type=float, metavar="X", help="stop the pods before spending more than X USD")
    _pod_options(r)


def options_from_args(args: argparse.Namespace, servers: list[str]) -> FarmOptions:
    spec = PodSpec(gpu_type=args.gpu_type, image=None if args.template else args.image, template_id=args.template,
                   cloud_type=args.cloud, network_volume_id=args.network_volume, data_center_id=args.data_center,
                   container_disk_gb=args.container_disk_gb)
    return FarmOptions(servers=list(servers), endpoint=args.endpoint, farm=args.farm, pods=args.pods, pod=spec,
                       terminate=args.terminate, max_cost_usd=args.max_cost_usd, slots_per_server=args.slots,
                       endpoint_slots=args.endpoint_slots, runpod_api_url=args.runpod_api_url,
                       endpoint_base_url=args.endpoint_url, pod_url_template=args.pod_url_template,
                       pod_ready_timeout_s=args.pod_ready_timeout)


def estimates(jobs, fo: FarmOptions) -> list[Estimate]:
    """The dry run's table: each backend, sized as the options ask."""
    n = max(1, len(fo.servers))
    return table(jobs, n_servers=n, n_pods=fo.pods if fo.farm else n, gpu_type=fo.pod.gpu_type,
                 workers=fo.endpoint_slots)


def log_estimates(jobs, fo: FarmOptions) -> None:
    for line in format_table(estimates(jobs, fo)).splitlines():
        log.info("estimate: %s", line)


def load_costs(cfg, *, affinity_on: bool | None = None) -> LoadCosts | None:
    """The config's model-load costs (``scheduling`` and the GPU's row); None when
    ``scheduling.affinity`` is off (or ``affinity_on`` says so)."""
    sched = cfg["scheduling"]
    if not (sched["affinity"] if affinity_on is None else affinity_on):
        return None
    row = cfg.gpu_figures
    storage = sched["storage"]
    gbps = (row.get("load_gbps") or {}).get(storage)
    if gbps is None and storage not in STORAGE_GBPS:
        log.warning("gpu_table.%s has no load_gbps for storage %r and no default is known: using the network "
                    "volume's", cfg["gpu"], storage)
    return LoadCosts(storage=storage, cache=sched["comfyui_cache"], gbps=gbps, ram_gb=row.get("ram_gb", 62.0),
                     vram_gb=row.get("vram_gb", 24.0), slack_s=sched["max_delay_s"])


def log_load_estimates(jobs, models: dict, cfg, n_servers: int) -> None:
    """The dry run's sampling time, load time and loads per server, today's policy vs
    the model-affinity one (the storage and cache of ``scheduling``)."""
    costs = load_costs(cfg, affinity_on=True)
    assert costs is not None
    unread = sorted(j for j, m in models.items() if m is None)
    if unread:
        log.info("estimate: %d job(s) with a loader the driver cannot read are scheduled as today and priced "
                 "without loads: %s", len(unread), ", ".join(unread[:5]))
    for line in format_loads(with_loads(jobs, models, n_servers, costs), costs).splitlines():
        log.info("estimate: %s", line)


# ---------------------------------------------------------------------- farm command
def add_farm_command(sub, common: argparse.ArgumentParser) -> None:
    f = sub.add_parser("farm", parents=[common], help="RunPod pods: start (up), list (status), stop (down)")
    fsub = f.add_subparsers(dest="farm_command", required=True)
    up = fsub.add_parser("up", parents=[common], help="start pods and print their ComfyUI URLs")
    up.add_argument("--prefix", help="pod name prefix (default ap-farm-<date>-<time>)")
    _pod_options(up)
    for name, text in (("status", "list pods named with a prefix"), ("down", "stop pods named with a prefix")):
        c = fsub.add_parser(name, parents=[common], help=text)
        c.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"pod name prefix (default {DEFAULT_PREFIX!r})")
        c.add_argument("--runpod-api-url", metavar="URL")
        if name == "status":
            c.add_argument("--json", action="store_true")
        else:
            c.add_argument("--terminate", action="store_true", help="terminate (delete) instead of stopping")


def main(args: argparse.Namespace) -> int:
    install_log_redaction()
    api = RunPodApi(resolve_api_key(), base_url=args.runpod_api_url)
    if args.farm_command == "status":
        pods = find_pods(api, args.prefix)
        if args.json:
            keep = ("id", "name", "desiredStatus", "costPerHr", "uptimeSeconds", "gpuCount", "imageName")
            print(json.dumps([{k: p.get(k) for k in keep} for p in pods], indent=1))
        else:
            for p in pods:
                print(f"{p['id']}  {p['name']:<32} {p.get('desiredStatus', '?'):<10} "
                      f"${float(p.get('costPerHr') or 0):.3f}/h  up {int(p.get('uptimeSeconds') or 0)} s")
            print(f"{len(pods)} pod(s) named {args.prefix}*")
        return 0
    if args.farm_command == "down":
        ids = stop_pods(api, args.prefix, terminate=args.terminate)
        print(f"{'terminated' if args.terminate else 'stopped'} {len(ids)} pod(s) named {args.prefix}*")
        return 0
    prefix = args.prefix or f"ap-farm-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    spec = PodSpec(gpu_type=args.gpu_type, image=None if args.template else args.image, template_id=args.template,
                   cloud_type=args.cloud, network_volume_id=args.network_volume, data_center_id=args.data_center,
                   container_disk_gb=args.container_disk_gb)
    fleet = PodFleet(api, prefix=prefix, spec=spec, url_template=args.pod_url_template,
                     ready_timeout_s=args.pod_ready_timeout, terminate=args.terminate)
    try:
        urls = fleet.up(args.pods)
    except BaseException:
        try:
            fleet.down()  # nothing half-started stays billing
        except FarmError as exc:
            log.error("%s", exc)
        raise
    print(f"{len(urls)} pod(s) ready, named {prefix}-NN (stop them with: python -m driver farm down --prefix {prefix})")
    print(" ".join(f"--server {u}" for u in urls))
    return 0
