"""Build the runpod_flash_native._fingerprint extension.

Environment switches (read at build time):

RFN_OPENSSL_PREFIX  use the OpenSSL under this prefix (include/, lib/ or lib64/)
                    instead of looking for libcrypto on the system.
RFN_SANITIZE=1      build with AddressSanitizer + UndefinedBehaviorSanitizer
                    (-O1, frame pointers kept, no recovery from UB reports).
RFN_WERROR=1        turn every warning into an error.
RFN_DEBUG=1         -O0 -g3, asserts kept.
RFN_PORTABLE=1      use only the portable POSIX code paths (no Linux-only calls).

OpenSSL's headers are not needed: csrc/rfn_evp.h declares the few functions
used (and is checked against the real headers where they exist). Without a
prefix, libcrypto is taken from pkg-config when it knows it, else (Linux) the
runtime library libcrypto.so.3 is linked by file name, so a machine with only
Debian's libssl3 builds; macOS also looks in Homebrew's openssl@3.

A build records its switches and flags in the build directory; when they
differ from the last build's, every object is rebuilt (a normal build after a
sanitized one, or the reverse, never reuses the other's objects).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_LIBCRYPTO = (
    "error: runpod_flash_native needs OpenSSL 3's libcrypto and none was found. "
    "On Debian/Ubuntu: apt-get install libssl3 (already on every standard image); "
    "on macOS: brew install openssl@3; "
    "or point RFN_OPENSSL_PREFIX at an OpenSSL 3 installation."
)
SWITCHES = ("RFN_SANITIZE", "RFN_WERROR", "RFN_DEBUG", "RFN_PORTABLE", "RFN_OPENSSL_PREFIX")
RECORD_NAME = "rfn-build-switches.json"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _pkg_config_libcrypto():
    tool = os.environ.get("PKG_CONFIG") or "pkg-config"
    if shutil.which(tool) is None:
        return None
    try:
        cflags = subprocess.check_output(
            [tool, "--cflags", "libcrypto"], text=True, stderr=subprocess.DEVNULL
        ).split()
        libs = subprocess.check_output(
            [tool, "--libs", "libcrypto"], text=True, stderr=subprocess.DEVNULL
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


def _links(lib_args):
    """Can the C compiler link a program calling EVP_MD_fetch with ``lib_args``?"""
    import tempfile

    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory(prefix="rfn-probe-") as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w", encoding="ascii") as fh:
            fh.write("void *EVP_MD_fetch(void *, const char *, const char *);\n"
                     "int main(void) { return EVP_MD_fetch(0, \"SHA256\", 0) == 0; }\n")
        try:
            subprocess.run(cc + [src, "-o", os.path.join(tmp, "probe")] + lib_args, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError):
            return False
    return True


def find_libcrypto():
    prefix = os.environ.get("RFN_OPENSSL_PREFIX")
    if prefix:
        return _prefix_libcrypto(prefix)
    found = _pkg_config_libcrypto()
    if found is not None:
        return found
    if sys.platform == "darwin":
        for brew in ("/opt/homebrew/opt/openssl@3", "/usr/local/opt/openssl@3"):
            if os.path.isdir(brew):
                return _prefix_libcrypto(brew)
    if _links(["-l:libcrypto.so.3"]):
        # The runtime library alone (no libcrypto.so symlink from libssl-dev).
        return {"extra_link_args": ["-l:libcrypto.so.3"]}
    if _links(["-lcrypto"]):
        return {"libraries": ["crypto"]}
    sys.exit(NO_LIBCRYPTO)


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


class rfn_build_ext(build_ext):
    """build_ext that rebuilds everything when the switches changed.

    setuptools decides from timestamps alone, so without this an
    ``RFN_SANITIZE=1 ... build_ext --inplace`` after a normal build would
    compile nothing and leave the unsanitized extension in place.
    """

    def run(self):
        # One entry per output file: an in-place build and pip's build/lib
        # copy are judged separately.
        record = os.path.join(self.build_temp, RECORD_NAME)
        current = {
            self.get_ext_fullpath(e.name): {
                "switches": {name: os.environ.get(name, "") for name in SWITCHES},
                "cflags": e.extra_compile_args, "ldflags": e.extra_link_args,
                "libraries": e.libraries, "library_dirs": e.library_dirs,
                "include_dirs": e.include_dirs,
            }
            for e in self.extensions
        }
        try:
            with open(record, encoding="utf-8") as fh:
                previous = json.load(fh)
        except (OSError, ValueError):
            previous = {}
        if not isinstance(previous, dict) or any(previous.get(k) != v for k, v in current.items()):
            self.force = True
        super().run()
        if isinstance(previous, dict):
            previous.update(current)
        else:
            previous = current
        os.makedirs(self.build_temp, exist_ok=True)
        with open(record, "w", encoding="utf-8") as fh:
            json.dump(previous, fh, indent=1, sort_keys=True)


libcrypto = find_libcrypto()
libcrypto.setdefault("libraries", []).append("m")  # pgzip.c: log2
cflags, ldflags = compile_and_link_args()
ldflags += libcrypto.pop("extra_link_args", [])

setup(
    cmdclass={"build_ext": rfn_build_ext},
    ext_modules=[
        Extension(
            "runpod_flash_native._fingerprint",
            sources=sorted(glob(os.path.join("csrc", "*.c"))),
            depends=sorted(glob(os.path.join("csrc", "*.h"))),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            **libcrypto,
        )
    ],
)
