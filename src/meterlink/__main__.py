"""``python -m meterlink`` is the same as the ``meterlink`` command."""

from meterlink.agent.cli import main

raise SystemExit(main())
