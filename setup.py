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
used (and is checked against the real headers where they exist). Every
candidate libcrypto must link a call of EVP_MD_fetch (OpenSSL 3.0 and later).
RFN_OPENSSL_PREFIX is the only one looked at when set: one holding no OpenSSL 3
is an error naming it. Without it: pkg-config's libcrypto; then on macOS
Homebrew's openssl@3 (/opt/homebrew, /usr/local), MacPorts' (/opt/local) and
the libcrypto Python's own _hashlib loads (otool -L); on Linux the runtime
library libcrypto.so.3 by file name (a machine with only Debian's libssl3
builds), then -lcrypto. None: one line saying what to install.

Windows is refused with one line before any compiler runs.

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

ON_WINDOWS = (
    "error: runpod_flash_native does not build on Windows (its C core is POSIX); "
    "install it inside WSL 2 (a Linux distribution) and run flash-native there, "
    "or keep using runpod-flash's own `flash build` on Windows."
)
if sys.platform == "win32":
    sys.exit(ON_WINDOWS)

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402

NO_LIBCRYPTO = (
    "error: runpod_flash_native needs OpenSSL 3's libcrypto and none was found. "
    "On Debian/Ubuntu: apt-get install libssl3 (already on every standard image); "
    "on macOS: brew install openssl@3 (or sudo port install openssl3); "
    "or point RFN_OPENSSL_PREFIX at an OpenSSL 3 installation."
)
NO_LIBCRYPTO_DARWIN = (
    "error: runpod_flash_native needs OpenSSL 3's libcrypto and none was found "
    "(pkg-config, Homebrew's openssl@3 under /opt/homebrew and /usr/local, MacPorts under /opt/local, "
    "Python's own _hashlib): brew install openssl@3 (or sudo port install openssl3), "
    "or point RFN_OPENSSL_PREFIX at an OpenSSL 3 installation."
)
DARWIN_PREFIXES = ("/opt/homebrew/opt/openssl@3", "/usr/local/opt/openssl@3", "/opt/local")
SWITCHES = ("RFN_SANITIZE", "RFN_WERROR", "RFN_DEBUG", "RFN_PORTABLE", "RFN_OPENSSL_PREFIX")
RECORD_NAME = "rfn-build-switches.json"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _links(lib_args):
    """Can the C compiler link a program calling EVP_MD_fetch (OpenSSL 3's)
    with ``lib_args``?"""
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


def _link_args(found):
    """The linker arguments of a find_* answer, for _links()."""
    return ([f"-L{d}" for d in found.get("library_dirs", [])]
            + [f"-l{lib}" for lib in found.get("libraries", [])]
            + found.get("extra_link_args", []))


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
    found = {
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
        "libraries": [f[2:] for f in libs if f.startswith("-l")] or ["crypto"],
    }
    return found if _links(_link_args(found)) else None  # an OpenSSL 1.1 pkg-config knows


def _prefix_libcrypto(prefix):
    """OpenSSL 3's libcrypto under ``prefix`` (lib64/ or lib/), or None."""
    include = os.path.join(prefix, "include")
    for libdir in (os.path.join(prefix, "lib64"), os.path.join(prefix, "lib")):
        if not os.path.isdir(libdir):
            continue
        # The run-time search path: distutils has no rpath option on macOS
        # (conda's libcrypto is named @rpath/libcrypto.3.dylib).
        darwin = sys.platform == "darwin"
        common = {
            "include_dirs": [include] if os.path.isdir(include) else [],
            "library_dirs": [libdir],
            "runtime_library_dirs": [] if darwin else [libdir],
            "extra_link_args": [f"-Wl,-rpath,{libdir}"] if darwin else [],
        }
        candidates = [dict(common, libraries=["crypto"])]
        # Only the versioned runtime library (no libcrypto.so/.dylib link
        # name): linked by its path.
        for versioned in ("libcrypto.so.3", "libcrypto.3.dylib"):
            if os.path.isfile(os.path.join(libdir, versioned)):
                path = os.path.join(libdir, versioned)
                candidates.append(dict(common, extra_link_args=common["extra_link_args"] + [path]))
        for found in candidates:
            if _links(_link_args(found)):
                return found
    return None


def _hashlib_libcrypto_prefix():
    """macOS: the prefix of the libcrypto Python's own _hashlib links, or None
    (python.org's builds link OpenSSL statically: no libcrypto to name)."""
    try:
        import _hashlib
    except ImportError:
        return None
    try:
        out = subprocess.run(["otool", "-L", _hashlib.__file__], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines()[1:]:
        path = line.strip().split(" (", 1)[0]
        if os.path.basename(path).startswith("libcrypto."):
            if path.startswith("@"):  # @rpath/... (conda): the library sits in sys.prefix/lib
                return sys.prefix
            return os.path.dirname(os.path.dirname(path))
    return None


def find_libcrypto():
    prefix = os.environ.get("RFN_OPENSSL_PREFIX")
    if prefix:
        if not os.path.isdir(prefix):
            why = "no such directory"
        else:
            found = _prefix_libcrypto(prefix)
            if found is not None:
                return found
            why = "no libcrypto in its lib64/ or lib/ provides EVP_MD_fetch"
        sys.exit(f"error: RFN_OPENSSL_PREFIX={prefix} holds no OpenSSL 3 ({why}); "
                 "point it at an OpenSSL 3 installation (the directory holding lib/), or unset it.")
    found = _pkg_config_libcrypto()
    if found is not None:
        return found
    if sys.platform == "darwin":
        for brew in DARWIN_PREFIXES + (_hashlib_libcrypto_prefix(),):
            if brew and os.path.isdir(brew):
                found = _prefix_libcrypto(brew)
                if found is not None:
                    return found
        sys.exit(NO_LIBCRYPTO_DARWIN)
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
