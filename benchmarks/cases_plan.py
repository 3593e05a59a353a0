"""Plan case T4: flash's deploy comparison loop vs plan_reconciliation +
apply_reuse over benchmarks/bench_plan.py's manifests."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from harness import PythonImpl, Serving, interleave, repo_env

CASES = ("T4",)
DATA: dict[str, str] = {}
BUILDERS: dict = {}
T4_RESOURCES, T4_SCENARIO = 1000, "mixed"  # bench_plan.py's manifests


def plan_impl(impl: str):
    """T4 reuses benchmarks/bench_plan.py: its manifests, flash's loop, ours."""
    import bench_plan  # imports runpod_flash.cli.utils.deployment and ours up front

    return {"flash": bench_plan.flash_loop, "native": bench_plan.ours}[impl]


def serving(case: str, impl: str, data_dir: Path, runs: int) -> Serving:
    import bench_plan

    local, state = bench_plan.manifests(T4_RESOURCES, T4_SCENARIO)
    inputs = [(copy.deepcopy(local), state) for _ in range(runs + 1)]  # fn mutates local only
    # the plan + the resulting manifest
    check = lambda out, a: hashlib.sha256(json.dumps([out, a[0]], sort_keys=True).encode()).hexdigest()  # noqa: E731
    return Serving(f"{impl}/{case}", plan_impl(impl), inputs, check)


def deployment_available() -> str | None:
    """None, or why runpod_flash_native.deployment cannot be benchmarked here."""
    env = repo_env()
    proc = subprocess.run([sys.executable, "-c", "import runpod_flash_native.deployment as d; "
                           "d.plan_reconciliation; d.apply_reuse"],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return f"runpod_flash_native.deployment is not available in this checkout ({last})"


def run_case(case: str, data_dir: Path, tools: dict, runs: int) -> dict:
    why = deployment_available()
    if why is not None:
        return {"skipped": why}
    load = os.getloadavg()[0]
    res = interleave({"flash": PythonImpl(case, "flash", data_dir, runs, False),
                      "native": PythonImpl(case, "native", data_dir, runs, False)}, runs)
    if res["flash"]["result"] != res["native"]["result"]:
        raise SystemExit(f"{case}: plans or resulting manifests differ")
    res["load"] = load
    return res
