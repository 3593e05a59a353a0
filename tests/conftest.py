import importlib.machinery

import pytest

import runpod_flash_native._fingerprint as native


def pytest_configure(config):
    # No silent fallback: the suite must run against the compiled extension.
    if not native.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        raise pytest.UsageError(f"runpod_flash_native._fingerprint is not native: {native.__file__}")
