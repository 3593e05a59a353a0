"""The measurement behind create_tarball's compressor choice (benchmarks/README.md).

    python benchmarks/bench_compressors.py [--data-dir benchmarks/data]

Input: run.py's T6 build dir (run `python benchmarks/run.py --cases T6` once to
generate it), as the tar stream flash writes, split into its compressible part
(every member but the weights file) and the 128 MiB of random weights. Each
compressor runs on one thread (CPU time of this process) over each part; sizes
are of the raw deflate output. Optional modules that are not installed are
skipped.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
MiB = 1 << 20


def tar_bytes(root: Path, skip: set[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", copybufsize=MiB) as tar:
        tar.add(root, arcname=".", recursive=False)
        for item in sorted(root.iterdir()):
            if item.name not in skip:
                tar.add(str(item), arcname=f"./{item.name}")
    return buf.getvalue()


def one_stream(mod, level):
    def run(data):
        c = mod.compressobj(level, mod.DEFLATED, -15)
        return len(c.compress(data)) + len(c.flush())
    return run


def ours(mod):
    from runpod_flash_native import _pgzip

    def run(data):
        prev, n, view = b"", 0, memoryview(data)
        for off in range(0, len(data), _pgzip.BLOCK_SIZE):
            block = bytes(view[off : off + _pgzip.BLOCK_SIZE])
            out, _, _ = _pgzip.compress_block(mod, 9, prev, block, off + len(block) >= len(data))
            n += len(out)
            prev = block[-_pgzip.WINDOW :]
        return n
    return run


def candidates():
    yield "stdlib zlib 9 (flash)", one_stream(zlib, 9)
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        zlib_ng = None
    if zlib_ng is not None:
        for level in (9, 7, 6):
            yield f"zlib-ng {level}", one_stream(zlib_ng, level)
        yield "ours: zlib-ng 9, 1 MiB blocks + zdict + stored segments", ours(zlib_ng)
    yield "ours: stdlib zlib 9 (fallback), same blocks", ours(zlib)
    try:
        from isal import isal_zlib
    except ImportError:
        isal_zlib = None
    if isal_zlib is not None:
        yield "ISA-L 3", one_stream(isal_zlib, 3)
    try:
        import deflate
    except ImportError:
        deflate = None
    if deflate is not None:
        def libdeflate7(data):
            return sum(len(deflate.deflate_compress(data[i : i + 4 * MiB], 7))
                       for i in range(0, len(data), 4 * MiB))
        yield "libdeflate 7, 4 MiB independent raw deflate chunks", libdeflate7


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    args = ap.parse_args()
    root = args.data_dir / "t6"
    if not root.is_dir():
        raise SystemExit(f"{root} missing: run `python benchmarks/run.py --cases T6` first")
    weights = root / "model.safetensors"
    parts = {"compressible": tar_bytes(root, {weights.name}), "random": weights.read_bytes()}
    print("| compressor | " + " | ".join(f"{k} ({len(v) / MiB:.1f} MiB): CPU s, MiB" for k, v in parts.items()) + " |")
    print("| --- | " + " | ".join("---:" for _ in parts) + " |")
    for name, fn in candidates():
        cells = []
        for data in parts.values():
            c0 = time.process_time()
            n = fn(data)
            cells.append(f"{time.process_time() - c0:.2f} s, {n / MiB:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
