"""``python -m meterlink.replay FILE.toml [--keep DIR]``: replay a scenario, print the verdict."""

import sys

from .run import main

sys.exit(main())
