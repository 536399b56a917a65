"""``python -m meterlink`` is the same as the ``meterlink`` command."""

from meterlink.cli.main import main

raise SystemExit(main())
