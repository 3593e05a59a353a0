"""All benchmarks of runpod_flash_native against runpod-flash, in one command.

    python benchmarks/run.py [--runs 7] [--cases T1,T2,...,T12] [--e2e-runs 3]
                             [--data-dir benchmarks/data] [--output benchmarks/RESULTS.md]

Cases (inputs generated deterministically under --data-dir, git-ignored, and
reused while their recipe is unchanged):

  T1  20,000 files of 1-3 KiB in 1,000 directories, plus 3,000 files under an
      ignored .venv/: walk + ignore matching + fingerprint, the first call in
      a fresh process (one process per run)
  T2  one 1 GiB file plus a small handler.py: walk + fingerprint
  T3  100,000 files of 0.5-2 KiB in 1,000 directories: walk + fingerprint
  T4  a reconciliation plan over 1,000 resources (env dicts, gpu lists,
      nested network volumes; benchmarks/bench_plan.py's "mixed" scenario:
      20 new, 100 changed, 880 reused): flash's deploy comparison loop vs
      runpod_flash_native.deployment.plan_reconciliation + apply_reuse
  T5  re-fingerprinting T1 unchanged: repeated calls in one process
  T6  flash build's archive step on a build dir = copies of numpy, sympy,
      botocore, jedi, networkx (+ .dist-info) from this environment (~200 MiB)
      plus 128 MiB of random "weights": flash's create_tarball vs
      runpod_flash_native.build.create_tarball at 1, 2 and all threads
      (RUNPOD_FLASH_NATIVE_THREADS); the decompressed tar streams must be
      identical; archive sizes are recorded
  T7  flash build's copy step: 3,000 files of 1-3 KiB in 280 packages plus
      one 256 MiB weights file copied into a fresh destination directory per
      run: flash's copy_project_files (shutil.copy2 per file) vs
      runpod_flash_native.build.copy_project_files at 1, 2 and all threads;
      the copies (content, mode, mtime_ns, xattrs) must be identical
  T8  end to end: `flash build` vs `flash-native build` of benchmarks/
      bench_build.py's generated app (3,000 modules in 280 packages, a
      worker with three endpoints, 256 MiB of weights), alternating, in
      directories of the same name, flash-native at 1, 2 and all threads;
      --e2e-runs rounds after a warm-up (each build is a process of its own:
      ~20 s); the two builds' source_fingerprint must be equal
  T9  one file per directory: 15,000 directories (150 x 100) holding one
      0.5-4 KiB file each, plus 2,000 files under an ignored .venv/
  T10 one directory of 20,000 files of 0.5-4 KiB
  T11 a copy of this environment's installed site-packages
  T12 a chain 2,000 directories deep, one 0.5-2 KiB file per level (flash
      recurses once per level: its recursion limit is raised for it)
  T9-T12 also time get_file_tree alone, flash's vs ours ("tree" rows).

Implementations, each in its own process (so peak RSS growth is its own):
"flash" is the installed runpod-flash (get_file_tree(d,
load_ignore_patterns(d)) + compute_source_fingerprint(d, files), or the
comparison loop of reconcile_and_provision_resources); "native" is
runpod_flash_native.fingerprint_project(d) (walk, match, read and SHA-256 in
C). References for the physical limit, both compiled here from benchmarks/*.c
into <data-dir>/bin with `cc -O2 ... -lcrypto` (or -l:libcrypto.so.3):

  plain C loop  benchmarks/plain_loop.c: one thread opens, reads and hashes
                the pre-sorted list of the files flash selects (the list is
                built by this script with flash's own get_file_tree); same
                framed byte stream, so its digest must equal flash's
  SHA-256       benchmarks/sha_ref.c: single-core OpenSSL EVP SHA-256 over an
                in-memory buffer of the same byte count (no I/O)

Every timing is the median of --runs runs after one warm-up round (page cache
warm). The runs are interleaved: each round runs every implementation and
reference of the case once, in an order rotating from round to round, so load
from elsewhere on the machine hits all of them alike. All digests (T4: the
decisions and the resulting manifests) must agree. Peak RSS growth = VmHWM
after the last call minus VmHWM before the first one, in the implementation's
own process (T1: the largest over its per-run processes).

Layout: harness.py (workers, interleaving, references, machine),
cases_fingerprint.py (T1-T3, T5, T9-T12), cases_plan.py (T4),
cases_build.py (T6, T7), cases_e2e.py (T8), report.py (RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cases_build
import cases_e2e
import cases_fingerprint
import cases_plan
from harness import HERE, build_tools, openssl_speed, serve
from report import report

FAMILIES = (cases_fingerprint, cases_plan, cases_build, cases_e2e)
FAMILY = {case: family for family in FAMILIES for case in family.CASES}
CASES = tuple(sorted(FAMILY, key=lambda c: int(c[1:])))
ANALYSIS_MARKER = "<!-- analysis: hand-written, kept by run.py -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs after one warm-up (>= 5)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--output", type=Path, help="also write the markdown report here")
    ap.add_argument("--e2e-runs", type=int, default=3, help="T8: rounds after the warm-up (each ~1.5 min)")
    ap.add_argument("--serve", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        case, impl = args.serve
        serve(FAMILY[case].serving(case, impl, args.data_dir, args.runs))
        return
    if args.runs < 5:
        ap.error("--runs must be at least 5")
    cases = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases: {', '.join(sorted(unknown))}")

    load0 = os.getloadavg()
    t_start = time.perf_counter()
    for name in sorted({FAMILY[c].DATA[c] for c in cases if c in FAMILY[c].DATA}):
        print(f"data: {name}", file=sys.stderr)
        builders = {k: v for family in FAMILIES for k, v in family.BUILDERS.items()}
        builders[name](args.data_dir / name)
    tools = build_tools(args.data_dir)
    t_data = time.perf_counter() - t_start
    speed = openssl_speed()

    results = {}
    for case in CASES:
        if case not in cases:
            continue
        print(f"case {case} ...", file=sys.stderr)
        if case == "T8":
            results[case] = r = FAMILY[case].run_case(case, args.data_dir, tools, args.e2e_runs)
            print(f"  {r['median_s']}", file=sys.stderr)
            continue
        results[case] = FAMILY[case].run_case(case, args.data_dir, tools, args.runs)
        r = results[case]
        if "skipped" not in r:
            print(f"  flash {r['flash']['median']:.4f}s native {r['native']['median']:.4f}s"
                  + (f" plain {r['plain']['median']:.4f}s sha {r['sha']['median']:.4f}s" if "plain" in r else ""),
                  file=sys.stderr)
    text = report(args, results, time.perf_counter() - t_start, t_data, speed, load0)
    print(text)
    if args.output:
        # A hand-written analysis below ANALYSIS_MARKER survives re-runs.
        old = args.output.read_text() if args.output.exists() else ""
        if ANALYSIS_MARKER in old:
            text += "\n" + old[old.index(ANALYSIS_MARKER):]
        args.output.write_text(text)


if __name__ == "__main__":
    main()
