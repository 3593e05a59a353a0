"""Build the runpod_flash_native._fingerprint extension.

Environment switches (read at build time):

RFN_OPENSSL_PREFIX  use the OpenSSL under this prefix (include/, lib/ or lib64/)
                    instead of asking pkg-config for libcrypto.
RFN_SANITIZE=1      build with AddressSanitizer + UndefinedBehaviorSanitizer
                    (-O1, frame pointers kept, no recovery from UB reports).
RFN_WERROR=1        turn every warning into an error.
RFN_DEBUG=1         -O0 -g3, asserts kept.
RFN_PORTABLE=1      use only the portable POSIX code paths (no Linux-only calls).
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup

DEBIAN_HINT = (
    "runpod_flash_native needs OpenSSL's libcrypto (headers and library). "
    "On Debian/Ubuntu: apt-get install libssl-dev pkg-config; "
    "or point RFN_OPENSSL_PREFIX at an OpenSSL installation."
)


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _pkg_config_libcrypto():
    if shutil.which("pkg-config") is None:
        return None
    try:
        cflags = subprocess.check_output(
            ["pkg-config", "--cflags", "libcrypto"], text=True, stderr=subprocess.DEVNULL
        ).split()
        libs = subprocess.check_output(
            ["pkg-config", "--libs", "libcrypto"], text=True, stderr=subprocess.DEVNULL
        ).split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
        "libraries": [f[2:] for f in libs if f.startswith("-l")] or ["crypto"],
    }


def _prefix_libcrypto(prefix):
    libdirs = [d for d in (os.path.join(prefix, "lib64"), os.path.join(prefix, "lib")) if os.path.isdir(d)]
    return {
        "include_dirs": [os.path.join(prefix, "include")],
        "library_dirs": libdirs,
        "libraries": ["crypto"],
        "runtime_library_dirs": libdirs,
    }


def _header_present(include_dirs):
    for d in list(include_dirs) + ["/usr/include", "/usr/local/include"]:
        if os.path.exists(os.path.join(d, "openssl", "evp.h")):
            return True
    return False


def find_libcrypto():
    prefix = os.environ.get("RFN_OPENSSL_PREFIX")
    found = _prefix_libcrypto(prefix) if prefix else _pkg_config_libcrypto()
    if found is None:
        found = {"include_dirs": [], "library_dirs": [], "libraries": ["crypto"]}
    if not _header_present(found["include_dirs"]):
        sys.exit("error: openssl/evp.h not found. " + DEBIAN_HINT)
    return found


def compile_and_link_args():
    cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
              "-Wno-missing-field-initializers", "-fvisibility=hidden", "-pthread"]
    ldflags = ["-pthread"]
    if _flag("RFN_WERROR"):
        cflags.append("-Werror")
    if _flag("RFN_DEBUG"):
        cflags += ["-O0", "-g3", "-UNDEBUG"]
    if _flag("RFN_PORTABLE"): cflags.append("-DRFN_PORTABLE=1")
    if _flag("RFN_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
               "-fno-omit-frame-pointer"]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    return cflags, ldflags


libcrypto = find_libcrypto()
libcrypto["libraries"].append("m")  # pgzip.c: log2
cflags, ldflags = compile_and_link_args()

setup(
    ext_modules=[
        Extension(
            "runpod_flash_native._fingerprint",
            sources=sorted(glob.glob(os.path.join("csrc", "*.c"))),
            depends=sorted(glob.glob(os.path.join("csrc", "*.h"))),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            **libcrypto,
        )
    ],
)
