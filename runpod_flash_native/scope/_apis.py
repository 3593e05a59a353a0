"""The APIs the analysis knows by name (canonical dotted names: what a
binding resolves to, ``builtins.X`` for builtins), and the rule for each:
what loads or runs code, lists directories, spawns processes, or decides how
imports are found."""

from __future__ import annotations

import builtins
import re

# Calls that import a module named by their first argument.
_IMPORT_CALLS = {"importlib.import_module", "builtins.__import__", "importlib.__import__"}
# Calls that take a module, attribute or file name as a string and load it:
# a literal argument is a string like any other (the string rule follows it);
# a computed one widens.
_NAME_LOADERS = {
    "pydoc.locate", "pkgutil.resolve_name", "logging.config.dictConfig", "logging.config.fileConfig",
    "timeit.timeit", "timeit.repeat", "timeit.Timer", "importlib.metadata.entry_points",
}
# Callables that run code or load files by means not followed: any use widens.
_OPAQUE_CALLS = {
    "builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile", "builtins.breakpoint",
    "types.FunctionType", "types.CodeType", "marshal.load", "marshal.loads",
    "os.execv", "os.execve", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execvp", "os.execvpe",
}
# Modules whose every use widens (they find, load or run code by path or by
# names not visible here).
_OPAQUE_MODULES = {
    "runpy", "pkgutil", "zipimport", "site", "importlib.util", "importlib.machinery", "importlib.abc",
    "importlib.resources", "importlib._bootstrap", "importlib._bootstrap_external", "imp",
    "pkg_resources", "code", "codeop", "shelve", "sitecustomize", "usercustomize", "ctypes",
    "zipapp", "py_compile", "compileall", "modulefinder", "_imp",
    # test runners collect (list and import) modules on their own
    "pytest", "nose", "unittest.main", "unittest.TestLoader", "unittest.defaultTestLoader",
    "unittest.TestProgram", "doctest.testfile", "doctest.DocFileSuite",
}
# Deserialisers that import what their data names; only writing is safe.
_PICKLERS = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "pickle5"}
_PICKLE_SAFE = {"dump", "dumps", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "Pickler", "PicklingError",
                "PickleError", "PickleBuffer"}
_UNPICKLE_METHODS = {"read_pickle", "unsafe_load", "full_load", "unsafe_load_all", "full_load_all"}
_SAFE_YAML = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
# Process spawners: a literal command is a string like any other; a computed
# one may run any project file.
_SPAWN_MODULES = {"subprocess"}
_SPAWN_CALLS = {
    "os.system", "os.popen", "os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnlpe", "os.spawnv",
    "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn", "os.posix_spawnp", "pty.spawn",
    "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell", "commands.getoutput",
}
# Directory listings: a literal directory or pattern is checked against the
# project (does it list Python sources?); anything else widens.
_LISTING_CALLS = {
    "os.listdir": "dir", "os.scandir": "dir", "os.walk": "tree", "os.fwalk": "tree",
    "glob.glob": "pattern", "glob.iglob": "pattern", "shutil.copytree": "tree",
}
_LISTING_METHODS = {"iterdir": "dir", "glob": "pattern", "rglob": "rpattern", "walk": "tree",
                    "listdir": "dir", "scandir": "dir"}
# Modules with such methods that are not listings (``ast.walk``, ``re`` has none)
_NOT_LISTING_RECEIVERS = {"ast", "re", "fnmatch", "inspect"}
# Module attributes and names that decide how imports are found.
_SYS_STATE = {"path", "meta_path", "path_hooks", "path_importer_cache", "modules", "__dict__"}
_DUNDER_STATE = {"__package__", "__spec__", "__path__", "__name__", "__loader__", "__builtins__", "__file__",
                 "__cached__"}
# Modules whose object itself reaching code we cannot follow (as a value,
# through a computed attribute) could hand out one of the APIs above.
_CAPABLE_MODULES = (
    {"builtins", "importlib", "importlib.metadata", "sys", "os", "glob", "pathlib", "subprocess",
     "pydoc", "logging.config", "timeit", "types", "marshal", "yaml", "torch", "numpy", "pandas", "pty",
     "asyncio", "shutil"}
    | _OPAQUE_MODULES | _PICKLERS
)
# Names of the APIs above that a string can fetch (getattr, globals()[...]).
_API_LEAVES = {
    "import_module", "__import__", "exec", "eval", "compile", "execfile", "exec_module", "load_module",
    "run_path", "run_module", "spec_from_file_location", "module_from_spec", "resolve_name",
    "dictConfig", "fileConfig", "listdir", "scandir", "iterdir", "rglob", "unsafe_load",
    "full_load", "read_pickle", "__builtins__", "importlib", "builtins", "Popen", "check_output",
}
# Ways to use ``__file__`` that yield its directory, or the file itself.
_DIR_OF = {"dirname", "parent", "parents"}
_PASS_THROUGH = {"abspath", "realpath", "normpath", "resolve", "absolute", "expanduser", "fspath", "Path",
                 "PurePath", "PosixPath", "PurePosixPath", "str", "os.fspath"}
_BUILTIN_NAMES = set(dir(builtins))
# bounds of the binding fixed point (``a = b`` chains deeper than this, or
# dotted names longer, are not real aliases of a library API)
_MAX_ROUNDS = 16
_MAX_DEPTH = 8
_PY_NAME = re.compile(r"\.py[cw]?(?!\w)")


def _opaque_use(canon: str) -> str | None:
    """Why a use of ``canon`` cannot be followed, or None."""
    if canon in _OPAQUE_MODULES:
        return f"uses {canon}"
    head, _, leaf = canon.rpartition(".")
    if head in _PICKLERS and leaf not in _PICKLE_SAFE:
        return f"uses {canon} (unpickling imports modules named in the data)"
    if head == "sys" and leaf in _SYS_STATE:
        return f"uses sys.{leaf} (how imports are found)"
    if canon in _OPAQUE_CALLS:
        return f"uses {canon}" + ("()" if canon.startswith("builtins.") else "")
    if head == "importlib.metadata" and leaf not in {"version", "metadata", "PackageNotFoundError",
                                                     "distribution", "requires", "packages_distributions"}:
        return f"uses {canon} (entry points load modules by name)"
    return None
