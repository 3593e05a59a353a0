"""The markdown report of a run.py run (benchmarks/RESULTS.md): tables,
the issue's targets and their verdicts."""

from __future__ import annotations

import os
import shlex
import sys

from cases_build import ARCHIVE_IMPLS
from cases_fingerprint import SHAPE_CASES
from harness import HERE, MiB, code_version, fs_type, machine

TARGETS = {  # the targets; verdicts() checks them
    "T1": "≥ 8× faster than flash; no slower than the plain C loop",
    "T2": "≥ 5× faster than flash; ≤ 1.1× raw SHA-256 time; RSS growth ≤ 16 MiB",
    "T4": "≥ 10× faster than flash's loop",
    "T6": "≥ 4× faster than flash's create_tarball; archive ≤ 1.01× flash's size",
    "T7": "faster than flash's copy_project_files; identical copies",
    "T8": "flash-native build ≥ 2× faster than flash build end to end; same source_fingerprint",
    **{c: "≤ 1.0× the plain loop's wall; ≥ 8× flash where the loop is; CPU ≤ 1.3× the loop's; "
          "get_file_tree ≥ 5× flash's" for c in ("T9", "T10", "T11", "T12")},
}


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def mib(n) -> str:
    return "–" if n is None else f"{n / MiB:.1f} MiB"


LABELS = {
    "T1": "T1 20k files + ignored .venv (first call, fresh process)",
    "T2": "T2 1 GiB file + handler.py",
    "T3": "T3 100k small files",
    "T4": "T4 plan over 1,000 resources",
    "T5": "T5 re-fingerprint T1 unchanged",
    "T6": "T6 create_tarball, ~200 MiB packages + 128 MiB weights",
    "T7": "T7 copy_project_files, 3,000 small files + 256 MiB",
    "T9": "T9 15k directories, one small file each + ignored .venv",
    "T10": "T10 one directory of 20k files",
    "T11": "T11 copy of the installed site-packages",
    "T12": "T12 a chain 2,000 directories deep",
}


def verdicts(case: str, r: dict) -> str:
    if case == "T8":
        best = r["speedup"]["native-all"]
        return (f"{'met' if best >= 2 else 'MISSED'} ({best:.2f}× at all threads); "
                f"{'met' if r['same_fingerprint'] else 'MISSED'} (fingerprints equal)")
    f, n = r["flash"]["median"], r["native"]["median"]
    if case == "T1":
        ok1, ok2 = f / n >= 8, n <= r["plain"]["median"]
        return (f"{'met' if ok1 else 'MISSED'} ({f / n:.1f}×); "
                f"{'met' if ok2 else 'MISSED'} (plain/ours {r['plain']['median'] / n:.2f})")
    if case == "T2":
        ok1, ok2, ok3 = f / n >= 5, n <= 1.1 * r["sha"]["median"], r["native"]["rss_growth"] <= 16 * MiB
        return (f"{'met' if ok1 else 'MISSED'} ({f / n:.2f}×); {'met' if ok2 else 'MISSED'} "
                f"({n / r['sha']['median']:.2f}× SHA-256); {'met' if ok3 else 'MISSED'} "
                f"({mib(r['native']['rss_growth'])})")
    if case == "T4":
        return f"{'met' if f / n >= 10 else 'MISSED'} ({f / n:.1f}×)"
    if case == "T7":
        return f"{'met' if f / n > 1 else 'MISSED'} ({f / n:.2f}×); met (copies identical: SHA-256 checked)"
    if case in SHAPE_CASES:
        p = r["plain"]
        ft, nt = r["flash_tree"]["median"], r["native_tree"]["median"]
        ok1, ok2 = n <= p["median"], p["median"] * 8 > f or f / n >= 8
        ok3, ok4 = r["native"]["cpu_median"] <= 1.3 * p["cpu_median"], ft / nt >= 5
        return (f"{'met' if ok1 else 'MISSED'} ({n / p['median']:.2f}× the loop's wall); "
                f"{'met' if ok2 else 'MISSED'} ({f / n:.1f}× flash; loop {f / p['median']:.1f}×); "
                f"{'met' if ok3 else 'MISSED'} (CPU {r['native']['cpu_median'] / p['cpu_median']:.2f}× "
                f"the loop's); {'met' if ok4 else 'MISSED'} (get_file_tree {ft / nt:.1f}× flash's)")
    if case == "T6":
        ratio = r["native"]["size"] / r["flash"]["size"]
        return (f"{'met' if f / n >= 4 else 'MISSED'} ({f / n:.2f}×); "
                f"{'met' if ratio <= 1.01 else 'MISSED'} ({ratio:.4f}× flash's size)")
    return "–"


def report(args, results: dict, t_total: float, t_data: float, speed: str, load0) -> str:
    from importlib.metadata import version

    cmd = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    lines = [
        "# Benchmarks: runpod_flash_native vs runpod-flash",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {machine()}.",
        f"Code: {code_version()}.",
        f"runpod-flash {version('runpod-flash')}, pathspec {version('pathspec')}. "
        f"`openssl speed -bytes 16384 -seconds 3 -evp sha256`: {speed} (cross-check of the SHA-256 column).",
        "",
        f"Median of {args.runs} runs after one warm-up, warm page cache. flash = installed runpod-flash "
        "(get_file_tree + compute_source_fingerprint, or its deploy comparison loop); ours = "
        "`fingerprint_project(dir)` (T1-T3, T5) or `plan_reconciliation` + `apply_reuse` (T4); "
        "plain C loop = `benchmarks/plain_loop.c` over flash's pre-sorted file list; "
        "SHA-256 = `benchmarks/sha_ref.c`, single-core OpenSSL EVP over an in-memory buffer of the same "
        "byte count. Each implementation in its own process (T1: a fresh one per run); runs interleaved "
        "round by round (flash, ours, plain loop, SHA-256, rotating order). RSS growth = VmHWM after "
        "minus before the calls. Ratios are computed from the medians of this run.",
        "",
        "| case | flash | ours | plain C loop | SHA-256 | flash / ours | plain / ours | ours / SHA-256 "
        "| RSS growth flash | RSS growth ours | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    e2e = results.pop("T8", None)
    for case, r in results.items():
        if "skipped" in r:
            lines.append(f"| {LABELS[case]} | not available | | | | | | | | | |")
            notes.append(f"{case}: skipped: {r['skipped']}.")
            continue
        f, n = r["flash"], r["native"]
        plain, sha = r.get("plain"), r.get("sha")
        cells = [LABELS[case], ms(f["median"]), ms(n["median"]),
                 ms(plain["median"]) if plain else "–", ms(sha["median"]) if sha else "–",
                 f"**{f['median'] / n['median']:.2f}×**",
                 f"{plain['median'] / n['median']:.2f}" if plain else "–",
                 f"{n['median'] / sha['median']:.2f}" if sha else "–",
                 mib(f["rss_growth"]), mib(n["rss_growth"]), f"{r['load']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| case | target | result |", "| --- | --- | --- |"]
    for case, target in TARGETS.items():
        r = e2e if case == "T8" else results.get(case)
        if r is None:
            continue
        lines.append(f"| {case} | {target} | {'not run: ' + r['skipped'] if 'skipped' in r else verdicts(case, r)} |")
    lines += ["", "CPU time (medians; user + system, all threads of the process) is less sensitive to the "
              "machine's other jobs than wall time: with no second core free, ours runs its walk, read "
              "and hash threads on one core and its wall time is its CPU time.", "",
              "| case | files hashed | bytes hashed | flash CPU | ours CPU | plain loop CPU | SHA-256 CPU "
              "| plain / ours (CPU) | flash runs | ours runs |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for case, r in results.items():
        if "skipped" in r:
            continue
        f, n = r["flash"], r["native"]
        plain, sha = r.get("plain"), r.get("sha")
        cells = [case, format(r["files"], ",") if "files" in r else "–",
                 mib(r["bytes"]) if "bytes" in r else "–", ms(f["cpu_median"]), ms(n["cpu_median"]),
                 ms(plain["cpu_median"]) if plain else "–", ms(sha["cpu_median"]) if sha else "–",
                 f"{plain['cpu_median'] / n['cpu_median']:.2f}" if plain else "–",
                 " ".join(f"{t * 1000:.0f}" for t in f["times"]) + " ms",
                 " ".join(f"{t * 1000:.0f}" for t in n["times"]) + " ms"]
        lines.append("| " + " | ".join(cells) + " |")
    shapes = [c for c in SHAPE_CASES if c in results and "skipped" not in results[c]]
    if shapes:
        lines += ["", "get_file_tree alone (T9-T12): flash's vs ours, wall and CPU medians.", "",
                  "| case | flash | ours | flash / ours | flash CPU | ours CPU |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for case in shapes:
            ft, nt = results[case]["flash_tree"], results[case]["native_tree"]
            lines.append(f"| {case} | {ms(ft['median'])} | {ms(nt['median'])} | "
                         f"{ft['median'] / nt['median']:.2f}× | {ms(ft['cpu_median'])} | {ms(nt['cpu_median'])} |")
    if "T6" in results and "skipped" not in results["T6"]:
        r = results["T6"]
        lines += ["", "T6 by thread count (RUNPOD_FLASH_NATIVE_THREADS; all = "
                  f"{len(os.sched_getaffinity(0))}): wall and CPU medians, archive size. The decompressed "
                  "tar streams are identical (SHA-256 checked).", "",
                  "| implementation | wall | CPU | flash / this | archive | size / flash's |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for impl in ARCHIVE_IMPLS:
            x = r[impl]
            label = {"flash": "flash (gzip level 9, 1 thread)", "native": "ours, all threads"}.get(
                impl, f"ours, {ARCHIVE_IMPLS[impl]} thread(s)")
            lines.append(f"| {label} | {ms(x['median'])} | {ms(x['cpu_median'])} | "
                         f"{r['flash']['median'] / x['median']:.2f}× | {x['size']:,} B | "
                         f"{x['size'] / r['flash']['size']:.4f} |")
    if "T7" in results and "skipped" not in results["T7"]:
        r = results["T7"]
        lines += ["", "T7 by thread count (RUNPOD_FLASH_NATIVE_THREADS; all = "
                  f"{len(os.sched_getaffinity(0))}): wall and CPU medians. Every run copies into a fresh "
                  f"destination on {fs_type(HERE)}; the copies are identical (SHA-256 over path, content, "
                  "mode, mtime_ns, user xattrs).", "",
                  "| implementation | wall | CPU | flash / this |", "| --- | ---: | ---: | ---: |"]
        for impl in ARCHIVE_IMPLS:
            x = r[impl]
            label = {"flash": "flash (shutil.copy2 per file)", "native": "ours, all threads"}.get(
                impl, f"ours, {ARCHIVE_IMPLS[impl]} thread(s)")
            lines.append(f"| {label} | {ms(x['median'])} | {ms(x['cpu_median'])} | "
                         f"{r['flash']['median'] / x['median']:.2f}× |")
    if e2e is not None:
        med = e2e["median_s"]
        lines += ["", f"T8 end to end (`benchmarks/bench_build.py --runs {e2e['runs']} --threads 1,2,0`): median "
                  "wall time of whole `flash build` / `flash-native build` processes, alternating, after one "
                  f"warm-up round; load (1 min) at the start {e2e['load']:.2f}.", "",
                  "| command | wall | flash / this |", "| --- | ---: | ---: |"]
        for k, v in med.items():
            label = ("flash build" if k == "flash" else "flash-native build, all threads" if k == "native-all"
                     else f"flash-native build, {k.split('-', 1)[1]} thread(s)")
            lines.append(f"| {label} | {v:.2f} s | {med['flash'] / v:.2f}× |")
        lines.append(f"\nSame source_fingerprint: {e2e['same_fingerprint']}.")
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"Total wall time {t_total:.0f} s (data set up {t_data:.0f} s). Load average at the start: "
              f"{', '.join(f'{x:.2f}' for x in load0)}; at the end: {load_end}."]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
