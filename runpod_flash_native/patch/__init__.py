"""Swap flash's Python call sites for the native implementations.

:func:`patch_flash` rebinds, in an imported ``runpod_flash``, the module
attributes flash's own code calls through (``module.name(...)`` looks the name
up in the module's globals at call time, so rebinding the attribute reroutes
every later call):

=====================================================  ===========================================================
flash module attribute                                 native replacement
=====================================================  ===========================================================
``cli.commands.build.compute_source_fingerprint``      :func:`runpod_flash_native.patch.build_hooks.compute_source_fingerprint` (the native fingerprint; scoped when switched on)
``cli.commands.build.ManifestBuilder``                 :class:`runpod_flash_native.patch.build_hooks.ManifestBuilder` (flash's, handing its manifest to the fingerprint)
``load_ignore_patterns`` in ``cli.commands.build``, ``cli.commands.build_utils.scanner``, ``cli.commands.run`` (``flash dev``)   :func:`runpod_flash_native.patch.build_hooks.load_ignore_patterns` (the native patterns; pathspec's own errors and warnings for the same lines)
``cli.commands.build.get_file_tree``                   :func:`runpod_flash_native.patch.build_hooks.get_file_tree` (the native walk; a refused symlink loop leaves no ``.flash/.build``)
``get_file_tree`` in ``cli.commands.build_utils.scanner``, ``cli.commands.run``   :func:`runpod_flash_native.ignore.get_file_tree`
``cli.utils.deployment._resource_config_for_compare``  :func:`runpod_flash_native.deployment.resource_config_for_compare`
``cli.commands.build.create_tarball``                  :func:`runpod_flash_native.patch.build_hooks.create_tarball` (:func:`runpod_flash_native.build.create_tarball`, after the parse trees kept for the build are let go)
``cli.commands.build.copy_project_files``              :func:`runpod_flash_native.build.copy_project_files`
``ast`` in ``cli.commands.build``, ``cli.commands.build_utils.scanner``   :data:`runpod_flash_native.patch.ast_memo.flash_ast` (memoized ``ast.parse``/``ast.walk``)
``ast`` in ``stubs.local_modules``                     :data:`runpod_flash_native.patch.ast_memo.flash_ast_imports` (the same cache; ``walk`` yields only the import and call nodes flash looks at)
``cli.commands.build.validate_local_module_imports``   :func:`runpod_flash_native.patch.validate.validate_local_module_imports` (flash's function, file-system reads memoized per call)
``subprocess`` in ``cli.commands.build``              :data:`runpod_flash_native.patch.pip_install.pip_subprocess` (flash's ``pip install --target`` command with ``--no-compile``)
=====================================================  ===========================================================

``runpod_flash.cli.utils.ignore`` itself is left alone: flash's own modules
bound its functions at import time, and third-party code that calls it keeps
getting a real ``pathspec.PathSpec``.

A site is replaced only when its current value has the signature of flash's
function (its "shape"); anything else (a future flash, somebody else's
monkeypatch) is skipped with a :class:`FlashPatchWarning`. Nothing at all is
patched, again with a warning, when the installed runpod-flash is outside
:data:`SUPPORTED_FLASH_VERSIONS`, the range this release was verified with.

Both functions are idempotent and thread-safe; :func:`patched` is the
context-manager form and nests.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .._flash import SUPPORTED_FLASH_VERSIONS, version_supported
from .._flash import flash_version as _flash_version

__all__ = [
    "SUPPORTED_FLASH_VERSIONS",
    "FlashPatchWarning",
    "is_patched",
    "patch_flash",
    "patched",
    "unpatch_flash",
]

class FlashPatchWarning(UserWarning):
    """``patch_flash`` left (some of) flash's call sites unpatched."""


@dataclass(frozen=True)
class _Site:
    module: str
    attr: str
    params: tuple[str, ...] | None  # flash's signature; None: the attribute is the stdlib module `attr`
    native_module: str
    native_attr: str
    # absent from some verified releases (validate_local_module_imports came
    # after 1.14.0): a release without it has nothing there to patch
    optional: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.module, self.attr)

    def __str__(self) -> str:
        return f"{self.module}.{self.attr}"


_BUILD = "runpod_flash.cli.commands.build"
_SCANNER = "runpod_flash.cli.commands.build_utils.scanner"
_RUN = "runpod_flash.cli.commands.run"
_DEPLOYMENT = "runpod_flash.cli.utils.deployment"
_N_BUILD = "runpod_flash_native.build"
_N_IGNORE = "runpod_flash_native.ignore"
_N_DEPLOYMENT = "runpod_flash_native.deployment"
_LOCAL_MODULES = "runpod_flash.stubs.local_modules"
_N_AST = "runpod_flash_native.patch.ast_memo"
_N_HOOKS = "runpod_flash_native.patch.build_hooks"
_N_VALIDATE = "runpod_flash_native.patch.validate"

_LOAD = ("load_ignore_patterns", ("project_dir",))
_TREE = ("get_file_tree", ("directory", "spec", "base_dir"))

SITES: tuple[_Site, ...] = (
    # The fingerprint and the manifest builder go together: scoped rolls
    # (runpod_flash_native.scope) need the manifest the fingerprint is for.
    _Site(_BUILD, "compute_source_fingerprint", ("project_dir", "files"), _N_HOOKS, "compute_source_fingerprint"),
    _Site(_BUILD, "ManifestBuilder", ("project_name", "remote_functions", "scanner", "build_dir", "python_version"),
          _N_HOOKS, "ManifestBuilder"),
    # the native ignore patterns with flash's messages (pathspec's errors and warnings)
    *(_Site(module, _LOAD[0], _LOAD[1], _N_HOOKS, "load_ignore_patterns") for module in (_BUILD, _SCANNER, _RUN)),
    # the build's walk also cleans up after a symlink loop (flash follows it; we refuse)
    _Site(_BUILD, _TREE[0], _TREE[1], _N_HOOKS, "get_file_tree"),
    *(_Site(module, _TREE[0], _TREE[1], _N_IGNORE, _TREE[0]) for module in (_SCANNER, _RUN)),
    _Site(_DEPLOYMENT, "_resource_config_for_compare", ("config",), _N_DEPLOYMENT, "resource_config_for_compare"),
    _Site(_BUILD, "create_tarball", ("build_dir", "output_path", "app_name", "excluded_packages"),
          _N_HOOKS, "create_tarball"),
    _Site(_BUILD, "copy_project_files", ("files", "source_dir", "dest_dir"), _N_BUILD, "copy_project_files"),
    # flash parses every shipped file several times per build (see ast_memo);
    # local_modules only looks at import nodes and calls in what ast.walk yields.
    *(_Site(module, "ast", None, _N_AST, "flash_ast") for module in (_BUILD, _SCANNER)),
    _Site(_LOCAL_MODULES, "ast", None, _N_AST, "flash_ast_imports"),
    # flash's own validation, with its file-system reads memoized per call
    _Site(_BUILD, "validate_local_module_imports", ("files", "project_dir"), _N_VALIDATE,
          "validate_local_module_imports", optional=True),
    # flash's pip command with --no-compile: pip byte-compiles every installed
    # file and run_build deletes the .pyc again (pip_install)
    _Site(_BUILD, "subprocess", None, "runpod_flash_native.patch.pip_install", "pip_subprocess"),
)

_lock = threading.RLock()
# site key -> (flash's original object, the native object we installed)
_active: dict[tuple[str, str], tuple[object, object]] = {}


def _shape_matches(obj: object, params: tuple[str, ...] | None, attr: str = "ast") -> bool:
    if params is None:  # the attribute is the stdlib module of that name
        return obj is importlib.import_module(attr)
    if not callable(obj):
        return False
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return tuple(sig.parameters) == params


def _warn(message: str) -> None:
    # stacklevel 4: the caller of patch_flash() (via apply_patch)
    warnings.warn(message, FlashPatchWarning, stacklevel=4)


def is_patched() -> bool:
    """True while at least one flash call site runs the native code."""
    with _lock:
        return any(_current(key) is new for key, (_, new) in _active.items())


def _current(key: tuple[str, str]) -> object:
    module = importlib.import_module(key[0])
    return getattr(module, key[1], None)


def patch_flash() -> bool:
    """Route flash's fingerprint, ignore-walk and config-compare call sites to
    the native implementations.

    Returns True when the patch is active after the call (also when it already
    was), False when nothing was patched because the installed runpod-flash is
    missing or outside :data:`SUPPORTED_FLASH_VERSIONS` (a
    :class:`FlashPatchWarning` says why). Sites whose current value does not
    have flash's signature are skipped with a warning.
    """
    return apply_patch(_warn)


def apply_patch(report: Callable[[str], None]) -> bool:
    """:func:`patch_flash`, handing each reason it left something unpatched to
    ``report`` instead of ``warnings.warn`` (``flash-native`` prints them
    without touching the process's warning filters)."""
    with _lock:
        version = _flash_version()
        if version is None:
            report("runpod-flash is not installed; patch_flash() patched nothing")
            return False
        if not version_supported(version):
            report(
                f"runpod-flash {version} is outside the range runpod_flash_native "
                f"was verified with ({SUPPORTED_FLASH_VERSIONS}); patch_flash() "
                "patched nothing and flash runs its own Python code"
            )
            return False

        # Resolve everything before touching anything: no half-applied patch
        # when an import fails.
        natives = {}
        modules = {}
        for site in SITES:
            native_module = importlib.import_module(site.native_module)
            natives[site.key] = getattr(native_module, site.native_attr)
            try:
                modules[site.module] = importlib.import_module(site.module)
            except ModuleNotFoundError as e:
                # a module the release does not have (1.14.0 has no
                # stubs.local_modules): nothing there to patch
                if e.name != site.module:
                    raise

        todo = []
        for site in SITES:
            if site.module not in modules:
                continue
            if site.optional and not hasattr(modules[site.module], site.attr):
                continue
            current = getattr(modules[site.module], site.attr, None)
            native = natives[site.key]
            if current is native:
                continue  # already patched
            if not _shape_matches(current, site.params, site.attr):
                expected = f"the {site.attr} module" if site.params is None else ", ".join(site.params)
                report(f"{site} does not have flash's signature ({expected}); left unpatched")
                continue
            todo.append((site, current, native))

        for site, original, native in todo:
            setattr(modules[site.module], site.attr, native)
            _active[site.key] = (original, native)
        return True


def flash_original(module: str, attr: str) -> object | None:
    """flash's own object at a site the patch replaced, or None when that site
    is not patched (the native wrappers that run flash's code call it)."""
    with _lock:
        entry = _active.get((module, attr))
        return entry[0] if entry is not None else None


def unpatch_flash() -> bool:
    """Restore flash's original functions at every site :func:`patch_flash`
    replaced. A site somebody rebound after us is left as it is.

    Returns True when something was restored. Idempotent.
    """
    with _lock:
        restored = False
        for (module_name, attr), (original, native) in list(_active.items()):
            module = importlib.import_module(module_name)
            if getattr(module, attr, None) is native:
                setattr(module, attr, original)
                restored = True
            del _active[(module_name, attr)]
        from . import ast_memo as _astcache

        _astcache.clear()
        return restored


@contextlib.contextmanager
def patched() -> Iterator[bool]:
    """``with patched():`` runs the block with :func:`patch_flash` applied and
    restores flash afterwards, unless the patch was already active on entry
    (nesting, or a global :func:`patch_flash`), in which case it stays.

    Yields what :func:`patch_flash` returned.
    """
    with _lock:
        was_patched = is_patched()
        active = patch_flash()
    try:
        yield active
    finally:
        if active and not was_patched:
            unpatch_flash()
