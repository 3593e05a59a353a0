"""A parallel writer of ONE standard gzip member (pigz's scheme).

The stream is cut into blocks of :data:`BLOCK_SIZE` bytes that worker threads
deflate at the same time. Each block's compressor is primed with the 32 KiB of
stream before it as preset dictionary (``zdict``) and ends with a sync flush,
so the raw deflate outputs concatenate into one deflate stream that any
inflater reads; only the last block ends with ``Z_FINISH``. The CRC-32s of the
blocks are joined with ``crc32_combine`` into the single trailer.

Incompressible data costs no deflate effort: each :data:`SEGMENT_SIZE` segment
whose order-0 byte entropy (native, GIL released) reaches
:data:`STORE_ENTROPY` and in which a native scan finds (next to) no 4-byte
repeat within deflate's 32 KiB window goes out as stored blocks at once;
one whose entropy reaches :data:`ENTROPY_THRESHOLD` otherwise is tried at
level 1 with the same dictionary and stored only when level 1 cannot shrink it.

The deflater is zlib-ng (``zlib_ng.zlib_ng``, PyPI ``zlib-ng``) when it is
installed, else the standard library's ``zlib``: same code, same format;
zlib-ng level 9 is ~3x faster for the same size (benchmarks/README.md).
Both release the GIL while they compress.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import secrets
import struct
import sys
import time
from types import ModuleType, TracebackType
from typing import Any

from . import _fingerprint

__all__ = ["GzipMemberWriter", "thread_count", "deflate_module"]

BLOCK_SIZE = 1 << 20
SEGMENT_SIZE = 1 << 16
WINDOW = 1 << 15
# Random bytes measure 7.997 bits/byte per 64 KiB; deflate output, JPEG and
# the like 7.99+. Below 7.9 Huffman coding alone saves more than 1%, so no
# trial is spent there.
ENTROPY_THRESHOLD = 7.9
LEVEL = 9
# At or above this entropy (Huffman alone saves < 0.13%), a segment with at
# most one LZ77 match candidate per MATCH_FRACTION bytes goes out stored
# without the level-1 trial; each candidate saves deflate at most a byte or
# two, so storing costs under 0.5% of such a segment against deflate.
STORE_ENTROPY = 7.99
MATCH_FRACTION = 512
THREADS_ENV = "RUNPOD_FLASH_NATIVE_THREADS"

_STORED_MAX = 0xFFFF
_WBITS = -15


#: Printed once per process when an archive is deflated without zlib-ng.
NO_ZLIB_NG_WARNING = (
    "flash-native: warning: zlib-ng is not installed; the archive is deflated with the "
    "standard zlib (~2.6x the CPU time, about flash's own speed on an app with dependencies); "
    "install it with: pip install zlib-ng"
)
_warned_no_zlib_ng = False


def _warn_no_zlib_ng() -> None:
    # stderr, not the warnings module: a user's warning filters (-W error)
    # must not turn a slow archive into a failed build
    global _warned_no_zlib_ng
    if not _warned_no_zlib_ng:
        _warned_no_zlib_ng = True
        try:
            sys.stderr.write(NO_ZLIB_NG_WARNING + "\n")
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # no usable stderr
            pass


def deflate_module() -> ModuleType:
    """zlib-ng's zlib-compatible module when installed, else stdlib ``zlib``."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        import zlib

        return zlib
    return zlib_ng


_bad_thread_values: set[str] = set()


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_count() -> int:
    """Worker threads: ``RUNPOD_FLASH_NATIVE_THREADS``, else the usable CPUs.

    A value that is not an integer >= 1 (``0``, ``auto``, ...) must not fail
    a build flash itself would run: it gets one warning line on stderr per
    process and value, and the default."""
    raw = os.environ.get(THREADS_ENV)
    if raw is not None and raw.strip():
        try:
            n = int(raw.strip())
        except ValueError:
            n = 0
        if n >= 1:
            return n
        default = _default_threads()
        if raw not in _bad_thread_values:
            _bad_thread_values.add(raw)
            sys.stderr.write(
                f"runpod_flash_native: warning: {THREADS_ENV}={raw!r} is not an integer >= 1; "
                f"using the default ({default}, the usable CPUs)\n"
            )
        return default
    return _default_threads()


def _stored(data: memoryview, final: bool) -> list[bytes | memoryview]:
    # Byte-aligned stored blocks: BFINAL/BTYPE=00 byte, LEN, NLEN, the bytes.
    out: list[bytes | memoryview] = []
    n = len(data)
    for off in range(0, n, _STORED_MAX):
        chunk = data[off : off + _STORED_MAX]
        last = final and off + _STORED_MAX >= n
        out.append(struct.pack("<BHH", 1 if last else 0, len(chunk), len(chunk) ^ 0xFFFF))
        out.append(chunk)
    return out


def _compressor(z: ModuleType, level: int, zdict: bytes | memoryview) -> Any:
    if len(zdict):
        return z.compressobj(level, z.DEFLATED, _WBITS, z.DEF_MEM_LEVEL, 0, zdict=zdict)
    return z.compressobj(level, z.DEFLATED, _WBITS, z.DEF_MEM_LEVEL, 0)


def _window_before(prev: bytes, block: memoryview, pos: int) -> bytes:
    """The WINDOW bytes of stream before block[pos]."""
    if pos >= WINDOW:
        return bytes(block[pos - WINDOW : pos])
    return (prev + bytes(block[:pos]))[-WINDOW:]


def _incompressible(z: ModuleType, prev: bytes, block: memoryview) -> list[bool]:
    entropy = _fingerprint.byte_entropy(block, SEGMENT_SIZE)
    matches: list[int] = []
    if any(bits >= STORE_ENTROPY for bits in entropy):
        matches = _fingerprint.lz_matches(prev + block, len(prev), SEGMENT_SIZE)
    flags = []
    for i, bits in enumerate(entropy):
        store = False
        seg_len = min(SEGMENT_SIZE, len(block) - i * SEGMENT_SIZE)
        if bits >= STORE_ENTROPY and matches[i] * MATCH_FRACTION <= seg_len:
            # Huffman coding saves < 0.13% at this entropy and LZ77 has next
            # to nothing to match: stored without a trial (a level-1 trial on
            # such data runs at ~100 MiB/s, the whole archive step's limit).
            store = True
        elif bits >= ENTROPY_THRESHOLD:
            pos = i * SEGMENT_SIZE
            seg = block[pos : pos + SEGMENT_SIZE]
            c = _compressor(z, 1, _window_before(prev, block, pos))
            store = len(c.compress(seg)) + len(c.flush(z.Z_SYNC_FLUSH)) >= len(seg)
        flags.append(store)
    return flags


def compress_block(
    z: ModuleType, level: int, prev: bytes, data: bytes, final: bool
) -> tuple[bytes, int, int]:
    """Deflate one block: (raw deflate bytes, crc32(data), len(data)).

    prev is the stream's WINDOW bytes before data (shorter at the start).
    Runs on a worker thread; every heavy call releases the GIL.
    """
    block = memoryview(data)
    flags = _incompressible(z, prev, block)
    runs: list[tuple[bool, int, int]] = []  # (stored, start, end)
    for i, store in enumerate(flags):
        start = i * SEGMENT_SIZE
        end = min(start + SEGMENT_SIZE, len(block))
        if runs and runs[-1][0] == store:
            runs[-1] = (store, runs[-1][1], end)
        else:
            runs.append((store, start, end))
    if not runs:
        runs.append((False, 0, 0))
    out: list[bytes | memoryview] = []
    for k, (store, start, end) in enumerate(runs):
        last = final and k == len(runs) - 1
        if store:
            out.extend(_stored(block[start:end], last))
        else:
            c = _compressor(z, level, _window_before(prev, block, start))
            out.append(c.compress(block[start:end]))
            out.append(c.flush(z.Z_FINISH if last else z.Z_SYNC_FLUSH))
    return b"".join(out), z.crc32(block), len(block)


def gzip_header(name: str | os.PathLike[str], level: int, mtime: float) -> bytes:
    """The member header Python's GzipFile writes for a file called name."""
    try:
        fname = os.path.basename(os.fspath(name))
        fname_b = fname if isinstance(fname, bytes) else fname.encode("latin-1")
        if fname_b.endswith(b".gz"):
            fname_b = fname_b[:-3]
    except UnicodeEncodeError:
        fname_b = b""
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    head = struct.pack("<BBBBLBB", 0x1F, 0x8B, 8, 0x08 if fname_b else 0, int(mtime) & 0xFFFFFFFF, xfl, 255)
    return head + (fname_b + b"\0" if fname_b else b"")


class GzipMemberWriter:
    """Write-only file object compressing into a temporary file beside
    ``target`` (default output_path), renamed onto it by :meth:`close`.

    :meth:`abort` (also called when :meth:`close` fails) joins the workers and
    removes the temporary file. At most ``2 * threads`` blocks are in flight.
    OS errors on the output carry output_path as their filename.
    """

    def __init__(
        self,
        output_path: str | os.PathLike[str],
        threads: int,
        *,
        level: int = LEVEL,
        module: ModuleType | None = None,
        target: str | os.PathLike[str] | None = None,
    ) -> None:
        self.output_path = os.fspath(output_path)
        # where the file lands (output_path unless that is a symlink to write through)
        self.target = os.fspath(target) if target is not None else self.output_path
        if module is None:
            module = deflate_module()
            if module.__name__ == "zlib":
                _warn_no_zlib_ng()
        self._z = module
        self._level = level
        self._max_inflight = 2 * threads
        self._buf = bytearray()
        self._prev = b""
        self._pos = 0
        self._crc = 0
        self._inflight: collections.deque[concurrent.futures.Future[tuple[bytes, int, int]]] = collections.deque()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._file = None
        self._closed = False
        directory, base = os.path.split(self.target)
        for _ in range(100):
            tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                continue
            except OSError as e:
                raise OSError(e.errno, e.strerror, self.output_path) from e
            break
        else:
            raise FileExistsError(f"{self.output_path}: no free temporary name")
        self.temp_path = tmp
        try:
            self._file = open(fd, "wb", buffering=BLOCK_SIZE)
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix="rfn-gzip"
            )
            self._out(gzip_header(self.output_path, level, time.time()))
        except BaseException:
            self.abort()
            raise

    # -- file object protocol used by tarfile ------------------------------
    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes
        self._buf += data
        self._pos += n
        while len(self._buf) > BLOCK_SIZE:
            # A block is cut only when more follows, so the last one is never empty.
            block = bytes(self._buf[:BLOCK_SIZE])
            del self._buf[:BLOCK_SIZE]
            self._submit(block, False)
        return n

    def flush(self) -> None:
        pass

    # -- internals ----------------------------------------------------------
    def _out(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.output_path) from e

    def _collect(self, future: concurrent.futures.Future[tuple[bytes, int, int]]) -> None:
        out, crc, length = future.result()
        self._crc = _fingerprint.crc32_combine(self._crc, crc, length)
        self._out(out)

    def _submit(self, block: bytes, final: bool) -> None:
        assert self._pool is not None
        while len(self._inflight) >= self._max_inflight or (
            self._inflight and self._inflight[0].done()
        ):
            self._collect(self._inflight.popleft())
        prev = self._prev
        self._prev = (prev + block[-WINDOW:])[-WINDOW:] if len(block) < WINDOW else block[-WINDOW:]
        self._inflight.append(
            self._pool.submit(compress_block, self._z, self._level, prev, block, final)
        )

    # -- completion ---------------------------------------------------------
    def close(self) -> None:
        """Finish the member, write the trailer and rename onto output_path."""
        if self._closed:
            return
        try:
            block = bytes(self._buf)
            self._buf = bytearray()
            self._submit(block, True)
            while self._inflight:
                self._collect(self._inflight.popleft())
            self._out(struct.pack("<LL", self._crc, self._pos & 0xFFFFFFFF))
            assert self._file is not None and self._pool is not None
            try:
                self._file.close()
            except OSError as e:
                raise OSError(e.errno, e.strerror, self.output_path) from e
            self._pool.shutdown(wait=True)
            os.replace(self.temp_path, self.target)
            self._closed = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop: cancel queued blocks, join the workers, remove the temp file."""
        self._closed = True
        for fut in self._inflight:
            fut.cancel()
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the buffered tail cannot be written; the file goes anyway
        try:
            os.unlink(self.temp_path)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> GzipMemberWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
