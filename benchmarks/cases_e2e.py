"""End-to-end case T8: `flash build` vs `flash-native build` of
benchmarks/bench_build.py's generated app (run there, in a process of its
own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import HERE, repo_env

CASES = ("T8",)
DATA: dict[str, str] = {}
BUILDERS: dict = {}


def run_case(case: str, data_dir: Path, tools: dict, runs: int) -> dict:
    """T8: benchmarks/bench_build.py, in a process of its own (it runs builds
    as subprocesses and prints one JSON document)."""
    env = repo_env()
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, str(HERE / "bench_build.py"), "--runs", str(runs), "--threads", "1,2,0",
                           "--data-dir", str(data_dir), "--json"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"T8: bench_build.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["load"] = load
    return r
