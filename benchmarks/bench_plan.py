"""Reconciliation plan over 1,000 resources: runpod_flash_native vs flash.

flash side: the decision part of runpod-flash 1.21.0's
``reconcile_and_provision_resources`` (fingerprint injection, the
``json.dumps(_resource_config_for_compare(...), sort_keys=True)`` comparison of
every shared resource, endpoint copying for reused ones), calling flash's own
``_resource_config_for_compare``; provisioning is not part of it.

our side: ``plan_reconciliation`` (same decisions, plus per-field reasons for
every update) followed by ``apply_reuse``.

Inputs are deterministic (seeded). Each timing is the median of --runs runs
after --warmup runs, flash's and ours alternating; every run gets a fresh
deep copy of the local manifest (both sides mutate it), made outside the
timed region, with the GC disabled while timing. Before timing, both sides' decisions and manifest mutations are
checked to be identical.

    python benchmarks/bench_plan.py [--resources 1000] [--runs 15] [--warmup 2]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from importlib.metadata import version  # noqa: E402

import runpod_flash.cli.utils.deployment as flash_deployment  # noqa: E402

from runpod_flash_native import deployment as native  # noqa: E402

FP_KEY = "_FLASH_SOURCE_FINGERPRINT"
GPUS = ["AMPERE_16", "AMPERE_24", "ADA_24", "AMPERE_48", "ADA_48_PRO", "AMPERE_80", "ADA_80_PRO", "HOPPER_141"]
DATACENTERS = ["EU-RO-1", "EU-SE-1", "US-TX-3", "US-KS-2", "CA-MTL-1"]


def resource_config(rng: random.Random, i: int) -> dict:
    """A config shaped like the resources flash build writes to the manifest."""
    env = {f"VAR_{k}": f"value-{rng.randrange(10**6)}" for k in range(rng.randint(4, 12))}
    env["HF_HOME"] = "/runpod-volume/hf"
    config = {
        "resource_type": rng.choice(["LiveServerless", "ServerlessEndpoint", "CpuLiveServerless"]),
        "name": f"worker_{i:04d}",
        "imageName": f"runpod/flash:{rng.choice(['1.21.0', '1.20.3'])}-py3.11",
        "gpuIds": rng.sample(GPUS, rng.randint(1, 4)),
        "gpuCount": rng.choice([1, 1, 2, 4]),
        "workersMin": rng.choice([0, 0, 1]),
        "workersMax": rng.randint(1, 10),
        "idleTimeout": rng.choice([5, 30, 60]),
        "executionTimeoutMs": rng.choice([60_000, 300_000, 600_000]),
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "flashboot": True,
        "locations": ",".join(rng.sample(DATACENTERS, 2)),
        "env": env,
        "networkVolume": {
            "name": f"vol-{i % 17}",
            "size": rng.choice([50, 100, 200]),
            "dataCenterId": rng.choice(DATACENTERS),
        },
        "networkVolumes": [
            {"name": f"cache-{i % 5}-{k}", "size": 20 * (k + 1), "dataCenterId": rng.choice(DATACENTERS)}
            for k in range(rng.randint(0, 2))
        ],
        "functions": [
            {"name": f"fn_{i}_{k}", "module": f"app.workers.w{i}", "is_async": bool(k % 2)}
            for k in range(rng.randint(1, 4))
        ],
        "makes_remote_calls": False,
        "is_load_balanced": False,
    }
    if i % 20 == 0:
        config["client_mode"] = True
    return config


def deployed(rng: random.Random, local_config: dict, fp: str, i: int) -> dict:
    """What the State Manager holds: the config as flash persisted it, plus
    the runtime fields the platform assigned."""
    config = copy.deepcopy(local_config)
    if not config.get("client_mode"):
        config["env"][FP_KEY] = fp
    config.update(
        endpoint_id=f"ep{i:06d}",
        aiKey=f"ai-{rng.randrange(10**9):09d}",
        id=f"ep{i:06d}",
        templateId=f"tpl{i:05d}",
        template={"id": f"tpl{i:05d}", "imageName": config["imageName"], "env": [{"key": "A", "value": "1"}]},
        userId="user_2abc",
        createdAt="2026-01-01T00:00:00Z",
    )
    return config


def manifests(n: int, scenario: str) -> tuple[dict, dict]:
    rng = random.Random(20260101)
    local = {
        "version": "1.0",
        "project_name": "bench",
        "python_version": "3.11",
        "source_fingerprint": "b" * 64,
        "resources": {f"worker_{i:04d}": resource_config(rng, i) for i in range(n)},
    }
    old_fp = "a" * 64 if scenario == "code-change" else local["source_fingerprint"]
    state_resources = {name: deployed(rng, cfg, old_fp, i) for i, (name, cfg) in enumerate(local["resources"].items())}
    if scenario == "mixed":
        names = sorted(state_resources)
        for name in names[::10]:
            state_resources[name]["workersMax"] += 1
        for name in names[5::50]:
            del state_resources[name]
    state = {
        "version": "1.0",
        "resources": state_resources,
        "resources_endpoints": {name: f"https://api.runpod.ai/v2/{c['endpoint_id']}" for name, c in state_resources.items()},
    }
    return local, state


def flash_loop(local: dict, state: dict) -> tuple[list, list, list]:
    """The decision part of flash's reconcile_and_provision_resources."""
    local_resources = set(local.get("resources", {}).keys())
    state_resources = set(state.get("resources", {}).keys())
    to_provision = local_resources - state_resources
    to_update = local_resources & state_resources
    fingerprint = local.get("source_fingerprint")
    if fingerprint:
        for config in local.get("resources", {}).values():
            if config.get("client_mode"):
                continue
            config.setdefault("env", {})[FP_KEY] = fingerprint
    updated, reused = [], []
    for name in sorted(to_update):
        local_config = local["resources"][name]
        state_config = state.get("resources", {}).get(name, {})
        local_json = json.dumps(flash_deployment._resource_config_for_compare(local_config), sort_keys=True)
        state_json = json.dumps(flash_deployment._resource_config_for_compare(state_config), sort_keys=True)
        has_endpoint = name in state.get("resources_endpoints", {})
        if local_json != state_json or not has_endpoint:
            updated.append(name)
            continue
        reused.append(name)
        if "endpoint_id" in state_config:
            local["resources"][name]["endpoint_id"] = state_config["endpoint_id"]
        if "aiKey" in state_config:
            local["resources"][name]["aiKey"] = state_config["aiKey"]
        if name in state.get("resources_endpoints", {}):
            local.setdefault("resources_endpoints", {})[name] = state["resources_endpoints"][name]
    return sorted(to_provision), updated, reused


def ours(local: dict, state: dict) -> tuple[list, list, list]:
    plan = native.plan_reconciliation(local, state)
    native.apply_reuse(local, state, plan)
    return list(plan.provision), list(plan.update), list(plan.reuse)


def check_same(local: dict, state: dict) -> tuple[list, list, list]:
    a, b = copy.deepcopy(local), copy.deepcopy(local)
    theirs = flash_loop(a, state)
    mine = ours(b, state)
    assert theirs == mine, "decisions differ"
    assert a == b and repr(a) == repr(b), "manifest mutations differ"
    return mine


def timed_pair(local: dict, state: dict, runs: int, warmup: int) -> tuple[float, float]:
    """Median ms of flash_loop and ours. Runs alternate between the two so
    that load from elsewhere on the machine hits both alike."""
    samples: dict = {flash_loop: [], ours: []}
    for k in range(runs + warmup):
        for fn in (flash_loop, ours) if k % 2 == 0 else (ours, flash_loop):
            manifest = copy.deepcopy(local)
            gc.collect()
            gc.disable()
            t0 = time.perf_counter_ns()
            fn(manifest, state)
            t1 = time.perf_counter_ns()
            gc.enable()
            if k >= warmup:
                samples[fn].append((t1 - t0) / 1e6)
    return statistics.median(samples[flash_loop]), statistics.median(samples[ours])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if args.runs < 5:
        ap.error("--runs must be at least 5")

    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"python {platform.python_version()} ({platform.machine()}), runpod-flash {version('runpod-flash')}, "
        f"{args.resources} resources, median of {args.runs} runs after {args.warmup} warm-up"
    )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'scenario':<12} {'provision':>9} {'update':>7} {'reuse':>6}  {'flash loop':>11} {'ours':>9}  {'ratio':>7}")
    for scenario, what in [
        ("code-change", "new fingerprint: every non-client resource rolls, reasons collected"),
        ("no-op", "same fingerprint and config: everything reused, endpoints copied"),
        ("mixed", "no-op plus 10% workersMax changes and 2% missing from state"),
    ]:
        local, state = manifests(args.resources, scenario)
        provision, update, reuse = check_same(local, state)
        t_flash, t_ours = timed_pair(local, state, args.runs, args.warmup)
        print(
            f"{scenario:<12} {len(provision):>9} {len(update):>7} {len(reuse):>6}  "
            f"{t_flash:>8.2f} ms {t_ours:>6.2f} ms  {t_flash / t_ours:>6.1f}x   # {what}"
        )


if __name__ == "__main__":
    main()
