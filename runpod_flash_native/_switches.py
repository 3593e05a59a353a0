"""On/off environment switches of our own (``FLASH_NATIVE_SCOPED_ROLLS``,
``RUNPOD_FLASH_NATIVE_PIP_COMPILE``): one spelling of true and false for all."""

from __future__ import annotations

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_switch(name: str, raw: str) -> bool:
    """``raw``, the value of variable ``name``, as a bool (case and surrounding
    space ignored). ``ValueError`` naming the variable for anything else."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")
