"""``python -m runpod_flash_native``: the ``runpod-flash-native`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
