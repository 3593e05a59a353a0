"""Scoped source fingerprints: only the endpoints whose code changed roll.

flash (1.21.0) writes one ``source_fingerprint`` over every shipped file and,
on deploy, injects it into the ``env`` of every resource that is not in client
mode as ``_FLASH_SOURCE_FINGERPRINT``; any edit therefore rolls every endpoint.
This package computes, per resource, flash's fingerprint (same framing, same
digest, :func:`runpod_flash_native.build.compute_source_fingerprint`) over the
files in that resource's *scope* only, and writes it where flash's own deploy
comparison picks it up.

By job:

* :mod:`._switch`: the opt-in (:func:`scoped_rolls_enabled`);
* :mod:`._analysis`: what one module's source says it may load (source text
  alone), :mod:`._names`: which modules a text names, which names shadow a
  library; :mod:`._graph`: the project's graph and each resource's
  :class:`Scope`;
* :mod:`._fingerprints`: the scoped fingerprints and the scoped manifest;
* :mod:`._status`: what ``status`` and ``plan`` say.

The scope of a resource, conservative by construction (when the analysis is
unsure it widens to the whole project, i.e. flash's global fingerprint): the
module(s) defining its functions; every module they may load, transitively
(imports of every form, module names and file names in any string literal,
library-named modules at an import root, modules named in shipped non-``.py``
files); every shipped file that is not a ``.py`` module; every module no
resource reaches; the ``dependencies=`` declarations of the modules left out.
See README's "Scoped rolls" for the exact rules.

A scoped manifest differs from flash's in three places only:

* each fingerprinted resource's ``env["_FLASH_SOURCE_FINGERPRINT"]`` holds its
  scoped fingerprint (flash would inject the global one at deploy);
* ``source_fingerprint`` is ``null``, so flash's deploy injects nothing and
  compares the per-resource values (a plain ``flash deploy`` of a scoped
  manifest therefore scopes too);
* ``scoped_source_fingerprints`` records the mode, the global fingerprint and,
  per resource, its fingerprint, whether its scope is the whole project and
  why, and the shipped ``.py`` files its scope leaves out.
"""

from __future__ import annotations

from ._analysis import Facts, analyze_source
from ._fingerprints import (
    FORMAT_VERSION, FP_KEY, MANIFEST_KEY, apply_scoped_fingerprints, fingerprint_for_build, is_scoped_manifest,
    recorded_source_fingerprint, scoped_fingerprints,
)
from ._graph import Scope, analyze_scopes
from ._status import format_status, plan_notes, status_report
from ._switch import ENV_SWITCH, scoped_rolls_enabled

__all__ = [
    "ENV_SWITCH",
    "FORMAT_VERSION",
    "FP_KEY",
    "MANIFEST_KEY",
    "Facts",
    "Scope",
    "analyze_scopes",
    "analyze_source",
    "apply_scoped_fingerprints",
    "fingerprint_for_build",
    "format_status",
    "is_scoped_manifest",
    "plan_notes",
    "recorded_source_fingerprint",
    "scoped_fingerprints",
    "scoped_rolls_enabled",
    "status_report",
]
