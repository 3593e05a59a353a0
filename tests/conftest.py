import importlib.machinery
import os

import pytest

import runpod_flash_native._fingerprint as native
from reference import make_traversable, run_as_nobody


def pytest_configure(config):
    # No silent fallback: the suite must run against the compiled extension.
    if not native.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        raise pytest.UsageError(f"runpod_flash_native._fingerprint is not native: {native.__file__}")


def sanitized() -> bool:
    """True when this process runs with AddressSanitizer (RFN_SANITIZE=1 build
    with the runtime preloaded): RSS then says nothing about leaks."""
    with open("/proc/self/maps") as fh:
        return "libasan" in fh.read()


def pytest_collection_modifyitems(config, items):
    """RFN_HYPOTHESIS_MAX_EXAMPLES=N caps every property test at N examples,
    overriding their own @settings (CI's sanitizer run, ~3x slower)."""
    cap = os.environ.get("RFN_HYPOTHESIS_MAX_EXAMPLES")
    if not cap:
        return
    from hypothesis import settings

    seen = set()
    for item in items:
        fn = getattr(item, "obj", None)
        current = getattr(fn, "_hypothesis_internal_use_settings", None)
        if current is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if current.max_examples > int(cap):
            fn._hypothesis_internal_use_settings = settings(current, max_examples=int(cap))


@pytest.fixture(params=[1, 2, 3, 4], ids=lambda n: f"{n}-readers")
def readers(request):
    """Run the test with the threaded hash split over 1-4 reader threads
    (csrc/hash.c; by default one more than the CPUs, up to 4): the result must not
    depend on how many there are."""
    previous = native._set_reader_threads(request.param)
    try:
        yield request.param
    finally:
        native._set_reader_threads(previous)


@pytest.fixture
def unprivileged(tmp_path):
    """Run a callable as an unprivileged user and return its result.

    These machines (and CI) run as root, which bypasses file permissions, so
    PermissionError paths are exercised in a forked child that drops to
    nobody (reference.run_as_nobody). Exceptions raised in the child are
    re-raised here.
    """

    def run(fn):
        if os.geteuid() == 0:
            make_traversable(tmp_path)
        return run_as_nobody(fn)

    return run


def remove_deep_tree(root):
    """Delete a tree of any depth with O(1) open descriptors and no recursion
    (shutil.rmtree recurses in Python and dies past ~1,000 levels): every
    directory's children are hoisted up to root level before it is removed."""
    root = os.fspath(root)
    counter = 0
    while True:
        with os.scandir(root) as it:
            entries = list(it)
        if not entries:
            break
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o755)
                for child in os.listdir(entry.path):
                    while True:
                        counter += 1
                        target = os.path.join(root, f".hoisted-{counter}")
                        if not os.path.lexists(target):
                            break
                    os.rename(os.path.join(entry.path, child), target)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
    os.rmdir(root)


@pytest.fixture
def deep_tmp(tmp_path):
    """A directory for trees too deep for pytest's own (recursive) cleanup, or
    with many entries: on tmpfs when there is one (an ext4 mkdir/rmdir costs
    ~1-2 ms here, a tmpfs one ~10 us), removed without recursion."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        import tempfile

        d = tempfile.mkdtemp(prefix="rfn-deep-", dir=shm)
    else:
        d = tmp_path / "deep"
        d.mkdir()
    from pathlib import Path

    yield Path(d)
    remove_deep_tree(d)
